import { type BcClient, isBcError } from '../../drivers/protocols/bc/index.ts';
import type { ByteTransport } from '../../drivers/transports/index.ts';

/** How the recorder was seen to switch: its acknowledgement, or its tty going away before that was read. */
export type SwitchSeen = 'acknowledged' | 'link closed' | 'tty gone without a reply';

/**
 * Sends `BC+UDISKEN=1`. A recorder re-enumerates as storage when it switches, so its tty may vanish before its
 * acknowledgement is read: the link closing, or no reply from a tty that is gone (`deviceGone`: its serial-dir entry
 * vanished, the port answers ENODEV/EIO), both mean the switch happened. No reply from a tty that is still there is
 * a silent recorder: that BC_TIMEOUT is thrown, as is every other failure.
 */
export async function switchToMassStorage(client: BcClient, transport: ByteTransport): Promise<SwitchSeen> {
  try {
    await client.enableMassStorage();
    return 'acknowledged';
  } catch (e) {
    if (isBcError(e, 'BC_CLOSED')) return 'link closed';
    if (isBcError(e, 'BC_TIMEOUT') && (await transport.deviceGone?.()) === true) return 'tty gone without a reply';
    throw e;
  }
}
