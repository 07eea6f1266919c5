/** What pairing needs of a recorder that identified itself on its control channel and waits for its storage. */
export interface AwaitingRecorder {
  /** The serial the recorder gave on its control channel. */
  serial: string;
  /** USB port path of its control channel (null: not on USB). */
  portPath: string | null;
  /** USB serial number (iSerial) of its command-mode device, when it has one. */
  usbSerial?: string | null;
}

/**
 * Which waiting recorder a USB storage device that just appeared belongs to. On the same port path, the recorder
 * there; else (a SuperSpeed storage re-enumerates on the USB 3 bus: port path 1-1 → 2-1) the one recorder on the twin
 * port whose command-mode USB serial, or whose own serial, is the storage's USB serial. Two candidates are never
 * guessed between.
 */
export function pairStorage<T extends AwaitingRecorder>(
  awaiting: Iterable<T>,
  storage: { portPath: string; usbSerial: string | null | undefined },
): T | undefined {
  const all = [...awaiting];
  const byPort = all.find((a) => a.portPath === storage.portPath);
  if (byPort) return byPort;
  const usbSerial = storage.usbSerial?.trim();
  if (!usbSerial) return undefined;
  // Only the recorder on the twin port (the same chain of ports on the other bus, 1-1.3 → 2-1.3): recorders of one
  // model may share one iSerial, and a storage in another bay must never take a waiting recorder's identity.
  const bySerial = all.filter(
    (a) => (a.usbSerial === usbSerial || a.serial === usbSerial) && a.portPath && sameChain(a.portPath, storage.portPath),
  );
  return bySerial.length === 1 ? bySerial[0] : undefined;
}

/** Whether two USB port paths (`<bus>-<port>[.<port>…]`) are the same chain of ports on their buses. */
function sameChain(a: string, b: string): boolean {
  const chain = (p: string) => p.slice(p.indexOf('-') + 1);
  return a.includes('-') && b.includes('-') && chain(a) === chain(b);
}
