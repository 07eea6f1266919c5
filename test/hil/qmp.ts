import { EventEmitter } from 'node:events';
import net from 'node:net';

/** An event qemu sent (DEVICE_DELETED, …). */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/**
 * A QMP client (qemu's JSON machine protocol) over qemu's `-qmp unix:…,server=on,wait=off` socket: one command at a
 * time in flight, answers matched in order; events are emitted as `event`.
 */
export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private socket: net.Socket | null = null;
  private buf = '';
  private readonly waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void; what: string }[] = [];
  private greeted: (() => void) | null = null;
  readonly events: QmpEvent[] = [];

  async connect(socketPath: string): Promise<void> {
    const socket = net.createConnection(socketPath);
    this.socket = socket;
    const greeting = new Promise<void>((resolve) => {
      this.greeted = resolve;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => {});
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.receive(d));
    socket.on('close', () => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`QMP closed while waiting for ${w.what}`));
      this.emit('close');
    });
    await greeting;
    await this.execute('qmp_capabilities');
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const socket = this.socket;
    if (!socket || socket.destroyed) return Promise.reject(new Error(`QMP not connected (${command})`));
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve: resolve as (v: unknown) => void, reject, what: command });
      socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /** Resolves with the first event (already received since `since`, or to come) that passes the test. */
  waitForEvent(test: (e: QmpEvent) => boolean, since = 0): Promise<QmpEvent> {
    const seen = this.events.slice(since).find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const on = (e: QmpEvent) => {
        if (!test(e)) return;
        this.off('event', on);
        resolve(e);
      };
      this.on('event', on);
    });
  }

  close(): void {
    this.socket?.destroy();
  }

  private receive(data: string): void {
    this.buf += data;
    for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { class: string; desc: string } } & QmpEvent;
      if (msg.QMP) this.greeted?.();
      else if (msg.event) {
        this.events.push(msg);
        this.emit('event', msg);
      } else {
        const w = this.waiting.shift();
        if (!w) continue;
        if (msg.error) w.reject(new Error(`QMP ${w.what}: ${msg.error.class}: ${msg.error.desc}`));
        else w.resolve(msg.return);
      }
    }
  }
}
