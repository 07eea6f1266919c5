// The guest side of the hardware-in-the-loop harness (npm run test:hil), started by scripts/hil/init.sh in the chroot
// with the host's own Node: it owns the guest's virtio-serial port `hil` and, over its frames (frames.mjs), offers the
// host's services (the MQTT broker, the tus server) on the guest's loopback — the guest has no network device — and
// runs the processes the harness asks for (dockd, mount, …), streaming their output back. Plain JavaScript: no tsx to
// start under TCG. Usage: node guest-agent.mjs <spec.json>
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeControl, encodeFrame, FRAME, FrameReader } from './frames.mjs';

const PAUSE_ABOVE = 1 << 20;

async function findPort(name) {
  const dir = '/sys/class/virtio-ports';
  for (let i = 0; i < 100; i++) {
    for (const p of await fs.readdir(dir).catch(() => [])) {
      const n = await fs.readFile(path.join(dir, p, 'name'), 'utf8').catch(() => '');
      if (n.trim() === name) return path.join('/dev', p);
    }
    await sleep(100);
  }
  throw new Error(`no virtio-serial port named ${name}`);
}

/** The port: writes queued in order (a socket is paused while more than PAUSE_ABOVE bytes wait), frames read. */
class Port {
  writing = Promise.resolve();
  pending = 0;
  waiters = [];

  constructor(fh) {
    this.fh = fh;
  }

  send(bytes) {
    this.pending += bytes.length;
    this.writing = this.writing.then(async () => {
      let off = 0;
      while (off < bytes.length) off += (await this.fh.write(bytes, off, bytes.length - off)).bytesWritten;
      this.pending -= bytes.length;
      if (this.pending < PAUSE_ABOVE) for (const w of this.waiters.splice(0)) w();
    });
    return this.pending < PAUSE_ABOVE;
  }

  onDrained(fn) {
    this.waiters.push(fn);
  }

  async *frames() {
    const reader = new FrameReader();
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) {
        await sleep(50); // the host end is not connected (yet)
        continue;
      }
      yield* reader.push(Buffer.from(buf.subarray(0, bytesRead)));
    }
  }
}

async function main(specFile) {
  const spec = JSON.parse(await fs.readFile(specFile, 'utf8'));
  const port = new Port(await fs.open(await findPort('hil'), 'r+'));
  const control = (m) => port.send(encodeControl(m));
  const sockets = new Map();
  const children = new Map();
  let nextChannel = 1;

  await Promise.all(
    Object.entries(spec.services).map(
      ([service, listenPort]) =>
        new Promise((resolve, reject) => {
          const server = net.createServer((socket) => {
            const ch = nextChannel++;
            sockets.set(ch, socket);
            port.send(encodeFrame(FRAME.open, ch, Buffer.from(service)));
            socket.on('data', (d) => {
              if (!port.send(encodeFrame(FRAME.data, ch, d))) {
                socket.pause();
                port.onDrained(() => socket.resume());
              }
            });
            socket.on('close', () => {
              if (sockets.delete(ch)) port.send(encodeFrame(FRAME.close, ch));
            });
            socket.on('error', () => {});
          });
          server.once('error', reject);
          server.listen(listenPort, '127.0.0.1', () => resolve(server));
        }),
    ),
  );

  const handle = (m) => {
    if (m.op === 'hello') {
      void fs.readFile('/proc/uptime', 'utf8').then((t) => control({ op: 'ready', uptimeSeconds: Number.parseFloat(t) }));
    } else if (m.op === 'spawn') {
      const child = spawn(m.argv[0], m.argv.slice(1), {
        env: { ...process.env, ...m.env },
        cwd: m.cwd ?? '/',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.set(m.id, child);
      for (const stream of ['stdout', 'stderr'])
        child[stream].on('data', (d) => control({ op: 'output', id: m.id, stream, data: d.toString('utf8') }));
      child.once('error', (e) => control({ op: 'exit', id: m.id, code: null, signal: null, error: e.message }));
      child.once('close', (code, signal) => {
        children.delete(m.id);
        control({ op: 'exit', id: m.id, code, signal });
      });
    } else if (m.op === 'kill') {
      children.get(m.id)?.kill(m.signal ?? 'SIGTERM');
    }
  };

  for await (const f of port.frames()) {
    if (f.type === FRAME.control) handle(JSON.parse(f.payload.toString('utf8')));
    else if (f.type === FRAME.data) sockets.get(f.channel)?.write(f.payload);
    else if (f.type === FRAME.close) {
      const s = sockets.get(f.channel);
      sockets.delete(f.channel);
      s?.end();
    }
  }
}

await main(process.argv[2]);
