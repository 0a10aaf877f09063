/**
 * The agent's side of the spawner's pipe protocol (child.ts is the other side and repeats these
 * numbers, since it cannot import). A frame: u32 length of what follows, u8 type, u32 command id,
 * payload. Pure: tested on literal bytes.
 */

export const FRAME_TYPES = {
  /** agent → spawner: run a command; payload JSON {command, env?, cwd?, pipeGraceMs}. */
  run: 1,
  /** spawner → agent: the command's bash runs; payload its pid as decimal text. */
  started: 10,
  stdout: 11,
  stderr: 12,
  /** spawner → agent: bash exited and its pipes are drained; payload JSON {code, signal, error?}. */
  done: 13,
  /** spawner → agent: set up and taking commands (id 0, empty payload). */
  ready: 20,
} as const;

export interface SpawnerFrame {
  type: number;
  id: number;
  payload: Buffer;
}

const HEAD = 9;

export function encodeFrame(type: number, id: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(HEAD + payload.length);
  frame.writeUInt32BE(5 + payload.length, 0);
  frame.writeUInt8(type, 4);
  frame.writeUInt32BE(id, 5);
  payload.copy(frame, HEAD);
  return frame;
}

/** Splits a byte stream into frames; a frame may arrive in any number of pieces. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  /** @throws Error when a length is impossible (the stream is not this protocol). */
  push(chunk: Buffer): SpawnerFrame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: SpawnerFrame[] = [];
    while (this.pending.length >= HEAD) {
      const length = this.pending.readUInt32BE(0);
      if (length < 5) throw new Error(`spawner frame length ${length} is shorter than its header`);
      if (this.pending.length < 4 + length) break;
      frames.push({ type: this.pending.readUInt8(4), id: this.pending.readUInt32BE(5), payload: this.pending.subarray(HEAD, 4 + length) });
      this.pending = this.pending.subarray(4 + length);
    }
    return frames;
  }
}

export interface DoneMessage {
  code: number | null;
  signal: string | null;
  error?: string;
}

/** A DONE payload, checked field by field (the spawner is ours, but a bad frame must not crash the agent). */
export function parseDone(payload: Buffer): DoneMessage {
  const value: unknown = JSON.parse(payload.toString('utf8'));
  if (typeof value !== 'object' || value === null) throw new Error('spawner done frame: not an object');
  const { code, signal, error } = value as Record<string, unknown>;
  if (code !== null && typeof code !== 'number') throw new Error('spawner done frame: code');
  if (signal !== null && typeof signal !== 'string') throw new Error('spawner done frame: signal');
  return { code, signal, ...(typeof error === 'string' ? { error } : {}) };
}
