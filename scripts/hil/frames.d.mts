export declare const FRAME: { readonly open: 1; readonly data: 2; readonly close: 3; readonly control: 4 };
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

export interface Frame {
  type: FrameType;
  channel: number;
  payload: Buffer;
}

export declare function encodeFrame(type: FrameType, channel: number, payload?: Buffer): Buffer;
export declare function encodeControl(message: object): Buffer;

export declare class FrameReader {
  push(chunk: Buffer): Frame[];
}

/** Control messages: the harness starts processes in the guest and reads their output and exit. */
export type HostToGuest =
  | { op: 'hello' }
  | { op: 'spawn'; id: number; argv: string[]; env?: Record<string, string>; cwd?: string }
  | { op: 'kill'; id: number; signal?: string };
export type GuestToHost =
  | { op: 'ready'; uptimeSeconds: number }
  | { op: 'output'; id: number; stream: 'stdout' | 'stderr'; data: string }
  | { op: 'exit'; id: number; code: number | null; signal: string | null; error?: string };

/** The agent's spec file: the host services it offers on the guest's loopback, name → port. */
export interface GuestSpec {
  services: Record<string, number>;
}
