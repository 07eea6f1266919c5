/** What a test of the wipe gate on a real USB recorder volume checks: the deletions dockd recorded, and the device. */
import fs from 'node:fs/promises';
import { expect } from 'vitest';
import type { DaemonProcess } from './daemon.ts';
import { waitForAudit } from './dockctlJson.ts';
import { sh } from './mountHelperWorld.ts';
import { waitFor } from './ports.ts';
import { sendReceipt } from './receipts.ts';
import { fileContents } from './trees.ts';
import type { RecorderClip } from './usbStorageWorld.ts';

/**
 * HQ confirms `gone`: waits until dockd has deleted exactly those from the recorder through a read-write remount (its
 * audit says so) and the wipe passes that deleted them have finished (they may be one pass or several; each logs
 * after it closed the volume).
 */
export async function confirmAndWaitForWipe(
  daemon: DaemonProcess,
  hq: { brokerUrl: string; stationId: string },
  gone: RecorderClip[],
): Promise<void> {
  for (const c of gone) await sendReceipt(hq.brokerUrl, hq.stationId, { sha256: c.sha256, ok: true });
  const deleted = await waitForAudit(daemon.configFile, 'recorder.file-deleted', { n: gone.length, timeoutMs: 120_000 });
  expect(deleted.map((e) => e.subject).sort()).toEqual(gone.map((c) => c.sha256).sort());
  for (const e of deleted) expect(e.data).toMatchObject({ method: 'remount', deviceSerial: '1234567' });
  await waitFor(
    'the wipe passes to finish',
    () =>
      daemon.logs
        .filter((l) => /deleted archived recordings from the recorder/.test(String(l.msg)))
        .reduce((n, l) => n + Number(l.deleted), 0) >= gone.length,
    60_000,
  );
}

/**
 * The unplugged device, checked and then mounted afresh (read-only, at `checkDir`): the filesystem is clean, exactly
 * the `gone` recordings are missing from what it held (`original`), and everything else is byte-identical.
 */
export async function expectDeviceAfterWipe(
  device: string,
  checkDir: string,
  original: Map<string, Buffer>,
  gone: RecorderClip[],
): Promise<void> {
  expect(() => sh('e2fsck', ['-n', '-f', device])).not.toThrow();
  await fs.mkdir(checkDir);
  sh('mount', ['-o', 'ro,noload', '-t', 'ext4', device, checkDir]);
  try {
    const after = await fileContents(checkDir);
    after.delete('lost+found');
    const goneRels = new Set(gone.map((c) => c.rel));
    for (const [rel, bytes] of original) {
      if (goneRels.has(rel)) expect(after.has(rel), rel).toBe(false);
      else expect(after.get(rel)?.equals(bytes), `${rel} unchanged`).toBe(true);
    }
    expect(after.size).toBe(original.size - gone.length);
  } finally {
    sh('umount', [checkDir]);
  }
}
