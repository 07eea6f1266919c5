// The framing on the hardware-in-the-loop guest's one virtio-serial channel (`hil`); plain JavaScript so that the guest
// agent starts without tsx (a TypeScript transform costs tens of seconds under TCG). Types: frames.d.mts.
//
// A virtio-serial port is a single byte stream with no connect or close of its own, so the TCP connections dockd makes
// inside the guest (MQTT, tus) and the harness's control messages travel on it as frames,
// `[type u8][channel u32][length u32][payload]`. Channel 0 carries control messages (JSON). Every other channel is one
// TCP connection opened in the guest: `open` names the host service it wants (its payload), `data` carries its bytes
// both ways, `close` ends it from either side.
export const FRAME = Object.freeze({ open: 1, data: 2, close: 3, control: 4 });

const HEADER = 9;

export function encodeFrame(type, channel, payload = Buffer.alloc(0)) {
  const head = Buffer.alloc(HEADER);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(channel, 1);
  head.writeUInt32BE(payload.length, 5);
  return Buffer.concat([head, payload]);
}

export function encodeControl(message) {
  return encodeFrame(FRAME.control, 0, Buffer.from(JSON.stringify(message)));
}

/** Splits a byte stream into frames, whatever the chunking. */
export class FrameReader {
  buf = Buffer.alloc(0);

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out = [];
    while (this.buf.length >= HEADER) {
      const length = this.buf.readUInt32BE(5);
      if (this.buf.length < HEADER + length) break;
      const type = this.buf.readUInt8(0);
      if (!Object.values(FRAME).includes(type)) throw new Error(`hil channel: unknown frame type ${type}`);
      out.push({ type, channel: this.buf.readUInt32BE(1), payload: Buffer.from(this.buf.subarray(HEADER, HEADER + length)) });
      this.buf = this.buf.subarray(HEADER + length);
    }
    return out;
  }
}
