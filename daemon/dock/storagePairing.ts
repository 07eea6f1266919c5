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
 * there; else (a SuperSpeed storage re-enumerates on the USB 3 bus: port path 1-1 → 2-1) the one recorder whose
 * command-mode USB serial, or whose own serial, is the storage's USB serial. Two candidates are never guessed between.
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
  const bySerial = all.filter((a) => a.usbSerial === usbSerial || a.serial === usbSerial);
  return bySerial.length === 1 ? bySerial[0] : undefined;
}
