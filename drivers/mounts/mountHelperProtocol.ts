import path from 'node:path';
import { PORT_PATH_RE } from '../usb/sysfs.ts';
import { MOUNT_NAME_RE } from './blockMount.ts';
import { CodedError } from '../errors.ts';

/**
 * The mount helper's protocol: one request per connection, one JSON object on one line (at most MAX_REQUEST_BYTES),
 * answered by one JSON line, then the connection closes. Nothing but these four requests exists, and every field is
 * checked here, before the helper looks at a device or a path:
 *
 *   {"op":"ping"}                                                     → {"ok":true,"protocol":1}
 *   {"op":"mount","device":"/dev/sdb1","usbPort":"1-1.2","name":"B2"} → {"ok":true,"device","mountPoint","fsType","options"}
 *   {"op":"unmount","name":"B2"}                                      → {"ok":true,"wasMounted","lazy"}
 *   {"op":"remount","name":"B2","mode":"rw"|"ro"}                     → {"ok":true}
 *   any refusal or failure                                            → {"ok":false,"code","message"}
 *
 * `name` is one path component (the mount point is `<runtime root>/<name>`, never anything else); `device` is a node
 * directly in the device root; `usbPort` a USB port path. The helper then asks sysfs whether that port's mass-storage
 * interface has that block device (mountHelperServer.ts).
 */

export const PROTOCOL_VERSION = 1;
export const MAX_REQUEST_BYTES = 4096;

export type MountHelperRequest =
  | { op: 'ping' }
  | { op: 'mount'; device: string; usbPort: string; name: string }
  | { op: 'unmount'; name: string }
  | { op: 'remount'; name: string; mode: 'rw' | 'ro' };

export type MountHelperResponse = { ok: true; [k: string]: unknown } | { ok: false; code: string; message: string };

export class RequestError extends CodedError<'BAD_REQUEST'> {
  constructor(message: string) {
    super('BAD_REQUEST', message);
  }
}

const DEVICE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

const FIELDS: Record<MountHelperRequest['op'], readonly string[]> = {
  ping: ['op'],
  mount: ['op', 'device', 'usbPort', 'name'],
  unmount: ['op', 'name'],
  remount: ['op', 'name', 'mode'],
};

/** Parses and checks one request line against the device root it may name devices in. Throws RequestError. */
export function parseRequest(line: string, devRoot: string): MountHelperRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    throw new RequestError('not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RequestError('not a JSON object');
  const o = doc as Record<string, unknown>;
  if (typeof o.op !== 'string' || !Object.hasOwn(FIELDS, o.op))
    throw new RequestError(`unknown op ${JSON.stringify(o.op)} (ping, mount, unmount, remount)`);
  const op = o.op as MountHelperRequest['op'];
  const allowed = FIELDS[op];
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length) throw new RequestError(`${op}: unexpected field ${extra[0]}`);
  for (const k of allowed) if (typeof o[k] !== 'string') throw new RequestError(`${op}: ${k} must be a string`);
  if (op === 'ping') return { op };
  const name = o.name as string;
  if (!MOUNT_NAME_RE.test(name) || name.includes('..'))
    throw new RequestError(`${op}: name ${JSON.stringify(name)} must be one path component of [A-Za-z0-9._:-]`);
  if (op === 'unmount') return { op, name };
  if (op === 'remount') {
    if (o.mode !== 'rw' && o.mode !== 'ro') throw new RequestError(`remount: mode must be rw or ro`);
    return { op, name, mode: o.mode };
  }
  const device = o.device as string;
  const root = path.resolve(devRoot);
  if (
    !path.isAbsolute(device) ||
    path.normalize(device) !== device ||
    path.dirname(device) !== root ||
    !DEVICE_NAME_RE.test(path.basename(device))
  ) {
    throw new RequestError(`mount: device ${JSON.stringify(device)} must be a node directly in ${root}`);
  }
  const usbPort = o.usbPort as string;
  if (!PORT_PATH_RE.test(usbPort)) throw new RequestError(`mount: usbPort ${JSON.stringify(usbPort)} is not a USB port path`);
  return { op, device, usbPort, name };
}
