import { EventEmitter } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeControl, encodeFrame, FRAME, FrameReader, type GuestToHost, type HostToGuest } from '../../scripts/hil/frames.mjs';

export interface GuestProcess {
  readonly id: number;
  stdout: string;
  stderr: string;
  /** Settles with the exit code (null: killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Called with each complete stdout line as it arrives. */
  onLine?: (line: string) => void;
}

/**
 * The host end of the guest's `hil` virtio-serial channel (scripts/hil/frames.ts): connects the guest's loopback
 * connections to the host services they name (on 127.0.0.1 here), and runs processes in the guest through its agent.
 */
export class GuestLink extends EventEmitter<{ ready: [number] }> {
  private socket: net.Socket | null = null;
  private readonly upstream = new Map<number, net.Socket>();
  private readonly procs = new Map<number, GuestProcess & { resolve: (c: number | null) => void; partial: string }>();
  private nextId = 1;
  readyUptime: number | null = null;

  constructor(private readonly services: Record<string, number>) {
    super();
  }

  /** Connects to qemu's chardev socket (retrying while qemu starts) and waits for the agent's `ready`. */
  async connect(socketPath: string, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        this.socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(socketPath, () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(100);
      }
    }
    const socket = this.socket;
    socket.on('error', () => {});
    const reader = new FrameReader();
    socket.on('data', (d: Buffer) => {
      for (const f of reader.push(d)) this.frame(f.type, f.channel, f.payload);
    });
    const ready = new Promise<number>((resolve) => this.once('ready', resolve));
    // The agent may not be up yet: say hello until it answers.
    const hello = setInterval(() => socket.write(encodeControl({ op: 'hello' })), 1000);
    socket.write(encodeControl({ op: 'hello' }));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the guest agent did not answer within ${timeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
    });
    try {
      return await Promise.race([ready, timedOut]);
    } finally {
      clearInterval(hello);
      clearTimeout(timer);
    }
  }

  spawn(argv: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): GuestProcess {
    const id = this.nextId++;
    let resolve!: (c: number | null) => void;
    const exited = new Promise<number | null>((r) => {
      resolve = r;
    });
    const proc = { id, stdout: '', stderr: '', exited, resolve, partial: '' };
    this.procs.set(id, proc);
    this.control({ op: 'spawn', id, argv, ...opts });
    return proc;
  }

  /** Runs a command in the guest to its end; throws on a non-zero exit. */
  async exec(
    argv: string[],
    opts: { allowFail?: boolean } = {},
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const p = this.spawn(argv);
    const code = await p.exited;
    if (code !== 0 && !opts.allowFail) throw new Error(`guest: ${argv.join(' ')} exited ${code}: ${p.stderr}`);
    return { code, stdout: p.stdout, stderr: p.stderr };
  }

  kill(p: GuestProcess, signal = 'SIGTERM'): void {
    this.control({ op: 'kill', id: p.id, signal });
  }

  close(): void {
    for (const s of this.upstream.values()) s.destroy();
    this.socket?.destroy();
  }

  private control(m: HostToGuest): void {
    this.socket?.write(encodeControl(m));
  }

  private frame(type: number, channel: number, payload: Buffer): void {
    if (type === FRAME.control) this.message(JSON.parse(payload.toString('utf8')) as GuestToHost);
    else if (type === FRAME.open) this.open(channel, payload.toString('utf8'));
    else if (type === FRAME.data) this.upstream.get(channel)?.write(payload);
    else if (type === FRAME.close) {
      const s = this.upstream.get(channel);
      this.upstream.delete(channel);
      s?.end();
    }
  }

  private open(channel: number, service: string): void {
    const port = this.services[service];
    const closeGuestSide = () => {
      if (this.upstream.delete(channel) || port === undefined) this.socket?.write(encodeFrame(FRAME.close, channel));
    };
    if (port === undefined) {
      closeGuestSide();
      return;
    }
    const s = net.createConnection(port, '127.0.0.1');
    this.upstream.set(channel, s);
    s.on('data', (d: Buffer) => this.socket?.write(encodeFrame(FRAME.data, channel, d)));
    s.on('close', closeGuestSide);
    s.on('error', () => {});
  }

  private message(m: GuestToHost): void {
    if (m.op === 'ready') {
      this.readyUptime = m.uptimeSeconds;
      this.emit('ready', m.uptimeSeconds);
      return;
    }
    const p = this.procs.get(m.id);
    if (!p) return;
    if (m.op === 'output') {
      if (m.stream === 'stderr') {
        p.stderr += m.data;
        return;
      }
      p.stdout += m.data;
      const lines = (p.partial + m.data).split('\n');
      p.partial = lines.pop() ?? '';
      for (const l of lines) p.onLine?.(l);
    } else if (m.op === 'exit') {
      this.procs.delete(m.id);
      if (m.error) p.stderr += m.error;
      p.resolve(m.code);
    }
  }
}
