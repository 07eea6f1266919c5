import { spawn } from 'node:child_process';

/**
 * A tiny sd_notify client. Node has no AF_UNIX datagram sockets, so each notification is handed to the
 * `systemd-notify` binary (it sends one datagram to $NOTIFY_SOCKET). Two details make that reliable:
 * - systemd-notify sends on behalf of its parent — this process, the unit's main PID — when it may (it needs
 *   CAP_SYS_ADMIN to put another PID in the credentials; dockd.service has it); otherwise from its own PID, which is why
 *   the unit says NotifyAccess=all;
 * - it waits (BARRIER=1, up to 5 s) until the service manager has processed the message before it exits, so the
 *   manager can still attribute it to the unit. Hence notifications are awaited, and never sent from a hot path.
 * Without $NOTIFY_SOCKET (not started by systemd, or Type≠notify) every call is a no-op that resolves to false.
 * Arguments are passed as `VARIABLE=VALUE` (understood by every systemd-notify version, unlike --stopping).
 */
export interface SdNotifyOptions {
  /** Environment to read NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID from; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** The binary; default `systemd-notify` on PATH (plus /usr/bin, /bin). */
  binary?: string;
  /** Give up on one notification after this long; default 10 s. */
  timeoutMs?: number;
}

export class SdNotifyError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super(message);
    this.name = 'SdNotifyError';
  }
}

export class SdNotify {
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: SdNotifyOptions = {}) {
    this.env = options.env ?? process.env;
  }

  /** Whether there is a service manager to tell anything to. */
  get enabled(): boolean {
    return Boolean(this.env.NOTIFY_SOCKET);
  }

  ready(status?: string): Promise<boolean> {
    return this.notify({ READY: '1', ...(status !== undefined ? { STATUS: status } : {}) });
  }
  stopping(status?: string): Promise<boolean> {
    return this.notify({ STOPPING: '1', ...(status !== undefined ? { STATUS: status } : {}) });
  }
  watchdog(): Promise<boolean> {
    return this.notify({ WATCHDOG: '1' });
  }
  status(text: string): Promise<boolean> {
    return this.notify({ STATUS: text });
  }

  /** Sends the assignments as one message; false when there is no NOTIFY_SOCKET. Rejects with SdNotifyError. */
  notify(fields: Record<string, string>): Promise<boolean> {
    if (!this.enabled) return Promise.resolve(false);
    const bad = Object.keys(fields).find((k) => !/^[A-Z_][A-Z0-9_]*$/.test(k));
    if (bad !== undefined) return Promise.reject(new SdNotifyError(`sd_notify: bad variable name ${JSON.stringify(bad)}`, null));
    // one assignment per line in the datagram: no newlines inside a value
    const args = Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`);
    if (args.length === 0) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      const child = spawn(this.options.binary ?? 'systemd-notify', args, {
        env: { ...this.env, PATH: `${this.env.PATH ?? ''}:/usr/bin:/bin` },
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: this.options.timeoutMs ?? 10_000,
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < 2000) stderr += d;
      });
      child.on('error', (e) => reject(new SdNotifyError(`sd_notify: cannot run systemd-notify: ${e.message}`, null)));
      child.on('close', (code, signal) => {
        if (code === 0) resolve(true);
        else
          reject(
            new SdNotifyError(
              `sd_notify ${args.join(' ')}: systemd-notify ${signal ? `killed by ${signal}` : `exit ${code}`}${stderr ? `: ${stderr.trim()}` : ''}`,
              code,
            ),
          );
      });
    });
  }
}

/**
 * The watchdog ping interval systemd asks of this process: half of WATCHDOG_USEC, or null when there is no watchdog
 * (unset, zero, malformed) or WATCHDOG_PID names another process.
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid): number | null {
  const usec = env.WATCHDOG_USEC;
  if (!usec || !/^\d+$/.test(usec) || Number(usec) === 0) return null;
  if (env.WATCHDOG_PID && env.WATCHDOG_PID !== String(pid)) return null;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

export interface Watchdog {
  readonly intervalMs: number | null;
  stop(): void;
}

/**
 * Pings WATCHDOG=1 at half of WATCHDOG_USEC until stopped; a no-op when systemd asked for no watchdog. A failed ping is
 * reported through onError and retried at the next tick. `healthy` (optional) lets the daemon withhold the ping when
 * its event loop is alive but its work is stuck — systemd then restarts it.
 */
export function startWatchdog(
  notify: SdNotify,
  options: {
    env?: NodeJS.ProcessEnv;
    pid?: number;
    healthy?: () => boolean;
    onError?: (e: Error) => void;
  } = {},
): Watchdog {
  const intervalMs = notify.enabled ? watchdogIntervalMs(options.env ?? process.env, options.pid) : null;
  if (intervalMs === null) return { intervalMs: null, stop() {} };
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight || (options.healthy && !options.healthy())) return;
    inFlight = true;
    notify
      .watchdog()
      .catch((e: Error) => options.onError?.(e))
      .finally(() => {
        inFlight = false;
      });
  }, intervalMs);
  timer.unref();
  return { intervalMs, stop: () => clearInterval(timer) };
}
