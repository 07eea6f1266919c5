/**
 * The dock handshake over a BcClient: log in → serial → officer → read the clock (and measure its drift against the
 * station's clock) → set the clock → battery → switch to mass storage. A failure is the step's BcError with `step` set.
 * `reconnect()` logs in again later on a recorder that kept its control channel (to delete files after HQ's receipt).
 */
import type { BcClient } from './client.ts';
import { BcError, isBcError, type BcStep } from './errors.ts';

export interface HandshakeOptions {
  password: string;
  /** The station's clock (injected; default: the system clock). */
  now?: () => Date;
  /** Set the recorder's clock to the station's (default true). */
  setClock?: boolean;
  /** Finish with `BC+UDISKEN=1` (default true). */
  massStorage?: boolean;
  /** Per-command timeout, ms (default: the client's). */
  timeoutMs?: number;
}

export interface HandshakeResult {
  serial: string;
  officerId: string;
  officerName: string;
  unitNo: string;
  /** The recorder's clock as it answered (one-second resolution). */
  recorderClock: Date;
  /** The station's clock at the moment of that reading (midpoint of the request and the reply). */
  stationClock: Date;
  /** recorderClock − stationClock, ms: positive when the recorder runs ahead. */
  driftMs: number;
  /** What the recorder's clock was set to (the station's clock, to the nearest second); null when not asked for. */
  clockSetTo: Date | null;
  battery: number;
  /** The word the recorder used to accept the login (`OK`, `Sucess`, …). */
  loginWord: string;
  /** True when the recorder acknowledged `BC+UDISKEN=1`. */
  massStorage: boolean;
}

async function step<T>(name: BcStep, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof BcError) {
      e.step = name;
      e.message = `${name}: ${e.message}`;
    }
    throw e;
  }
}

export async function handshake(client: BcClient, opts: HandshakeOptions): Promise<HandshakeResult> {
  const now = opts.now ?? (() => new Date());
  const call = { timeoutMs: opts.timeoutMs };
  const { word } = await step('login', () => client.login(opts.password, call));
  const serial = await step('serial', () => client.deviceId(call));
  const officer = await step('officer', () => client.officer(call));
  const { recorderClock, stationClock } = await step('read-clock', async () => {
    const before = now().getTime();
    const recorder = await client.clock(call);
    const after = now().getTime();
    return { recorderClock: recorder, stationClock: new Date(before + Math.round((after - before) / 2)) };
  });
  let clockSetTo: Date | null = null;
  if (opts.setClock ?? true) {
    clockSetTo = await step('set-clock', async () => {
      // The recorder keeps whole seconds: the nearest one is at most half a second off.
      const target = new Date(Math.round(now().getTime() / 1000) * 1000);
      await client.setClock(target, call);
      return target;
    });
  }
  const battery = await step('battery', () => client.battery(call));
  const massStorage = opts.massStorage ?? true;
  if (massStorage) await step('mass-storage', () => client.enableMassStorage(call));
  return {
    serial,
    ...officer,
    recorderClock,
    stationClock,
    driftMs: recorderClock.getTime() - stationClock.getTime(),
    clockSetTo,
    battery,
    loginWord: word,
    massStorage,
  };
}

export interface ReconnectOptions {
  password: string;
  /** The serial the recorder gave at its handshake: nothing is changed on any other recorder. */
  serial: string;
  /** Per-command timeout, ms (default: the client's). */
  timeoutMs?: number;
  /** Logins met by silence before giving up (default 3): opening a tty may flush what is first written to it. */
  attempts?: number;
}

/**
 * Logs in again on a recorder that has already been through the handshake and whose control channel stayed while its
 * storage is mounted, and checks that it is still that recorder (`BC+DID?`), before anything is changed on it (the
 * wipe gate's `BC+DEL`). Failures are BcErrors with `step` set; another recorder on the tty is BC_BAD_REPLY.
 */
export async function reconnect(client: BcClient, opts: ReconnectOptions): Promise<void> {
  const call = { timeoutMs: opts.timeoutMs };
  for (let attempt = 1; ; attempt++) {
    try {
      await step('login', () => client.login(opts.password, call));
      break;
    } catch (e) {
      if (attempt >= (opts.attempts ?? 3) || !isBcError(e, 'BC_TIMEOUT')) throw e;
    }
  }
  await step('serial', async () => {
    const serial = await client.deviceId(call);
    if (serial !== opts.serial)
      throw new BcError('BC_BAD_REPLY', `expected recorder ${opts.serial} on this channel, found ${serial}`, {
        command: 'BC+DID?',
      });
  });
}
