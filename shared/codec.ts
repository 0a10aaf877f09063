/**
 * Encoding and decoding of frames. Text frames are JSON validated by shared/frames.ts; binary
 * frames carry bulk stream data behind a fixed 24-byte header:
 *
 *   0  u8[2]  magic 'S' 'W'
 *   2  u8     header version (1)
 *   3  u8     flags: bits 0-1 codec (0 none, 1 gzip, 2 zstd); bit 2: CRC present
 *   4  u32be  stream id
 *   8  u64be  offset of the first raw (uncompressed) byte in the stream
 *   16 u32be  raw length (uncompressed bytes this frame stands for)
 *   20 u32be  CRC-32 of the payload as sent, when flag bit 2 is set (else 0)
 *   24 ...    payload
 *
 * The CRC is optional and off by default: every file carries a SHA-256 checked by the receiver
 * and the whole transfer a digest compared by the controller, so a per-frame CRC only costs CPU
 * (about 1.5 s per GiB on each side, measured by make bench). Turn it on to localise corruption
 * to a frame when debugging a relay.
 */
import { crc32 } from 'node:zlib';
import { SeedwireError } from './errors.js';
import { FrameSchema, IdSchema, type Frame } from './frames.js';
import { LIMITS } from './limits.js';

export const DATA_HEADER_BYTES = 24;
const MAGIC0 = 0x53;
const MAGIC1 = 0x57;
const DATA_VERSION = 1;
const FLAG_CRC = 0x04;

export const CODECS = ['none', 'gzip', 'zstd'] as const;
export type Codec = (typeof CODECS)[number];

export interface DataFrame {
  stream: number;
  offset: number;
  rawLength: number;
  codec: Codec;
  payload: Buffer;
  /** Write a CRC-32 of the payload into the header (default false). */
  crc?: boolean;
}

/** How much of a refused frame's type a refusal echoes (a peer must not be able to inflate our errors and logs). */
const ECHO_TYPE_CHARS = 32;

/** The type and call id of a refused frame, as far as they can be read and safely echoed. */
function describeRefused(raw: unknown): { type: string; id: string | null } {
  if (typeof raw !== 'object' || raw === null) return { type: '?', id: null };
  const t = (raw as { t?: unknown }).t;
  const type = typeof t === 'string' ? JSON.stringify(t.slice(0, ECHO_TYPE_CHARS) + (t.length > ECHO_TYPE_CHARS ? '...' : '')).slice(1, -1) : '?';
  const id = (raw as { id?: unknown }).id;
  // Only an id that is itself valid goes back to the peer: it is put into an error frame.
  return { type, id: IdSchema.safeParse(id).success ? (id as string) : null };
}

/**
 * The deepest nesting of `text` as JSON, counted without parsing and stopping once past `max`.
 * Node's JSON.parse copes with any depth, but JSON.stringify and every recursive walk after it
 * (the store, the event bus) overflow the stack, so a deep value must be refused at the boundary.
 */
function exceedsJsonDepth(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

export function encodeFrame(frame: Frame): string {
  return JSON.stringify(frame);
}

/**
 * Parse one text frame. Throws SeedwireError SEEDWIRE_BAD_FRAME (with the call id when one could be
 * read, so the peer can fail just that call) or SEEDWIRE_FRAME_TOO_LARGE.
 */
export function decodeFrame(text: string, maxBytes: number = LIMITS.maxMessageBytes): Frame {
  if (Buffer.byteLength(text) > maxBytes) {
    throw new SeedwireError('SEEDWIRE_FRAME_TOO_LARGE', `frame of ${Buffer.byteLength(text)} bytes exceeds ${maxBytes}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `frame is not JSON: ${(error as Error).message.slice(0, 200)}`, { cause: error });
  }
  if (exceedsJsonDepth(text, LIMITS.maxJsonDepth)) {
    const { type, id } = describeRefused(raw);
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `bad '${type}' frame: nests deeper than ${LIMITS.maxJsonDepth} levels`, { details: { id, type } });
  }
  const parsed = FrameSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.').slice(0, 128) : 'frame';
    const { type, id } = describeRefused(raw);
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `bad '${type}' frame at ${where}: ${(issue?.message ?? 'invalid').slice(0, 200)}`, {
      details: { id, type },
    });
  }
  return parsed.data;
}

function isUint32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

/**
 * Encodes a data frame into a new buffer, or into `into` when it is large enough (the result is
 * then a view of its start): a sender that reuses its frame buffers avoids a fresh allocation per
 * frame, whose page faults cost more than the copy itself (docs/performance.md).
 */
export function encodeDataFrame(frame: DataFrame, into?: Buffer): Buffer {
  const codecIndex = CODECS.indexOf(frame.codec);
  if (codecIndex < 0) throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `unknown codec ${frame.codec}`);
  // The header's fields have fixed widths; a value outside them would be written wrapped or throw a RangeError.
  if (!isUint32(frame.stream)) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame stream ${frame.stream} is not a u32`);
  if (!Number.isSafeInteger(frame.offset) || frame.offset < 0) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame offset ${frame.offset} is not a non-negative safe integer`);
  if (!isUint32(frame.rawLength)) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame raw length ${frame.rawLength} is not a u32`);
  const length = DATA_HEADER_BYTES + frame.payload.length;
  const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = DATA_VERSION;
  out[3] = codecIndex | (frame.crc ? FLAG_CRC : 0);
  out.writeUInt32BE(frame.stream, 4);
  out.writeBigUInt64BE(BigInt(frame.offset), 8);
  out.writeUInt32BE(frame.rawLength, 16);
  out.writeUInt32BE(frame.crc ? crc32(frame.payload) : 0, 20);
  frame.payload.copy(out, DATA_HEADER_BYTES);
  return out;
}

/** Read only the header (for relaying without copying the payload). */
export function decodeDataHeader(buf: Buffer): Omit<DataFrame, 'payload' | 'crc'> & { crc: number | null } {
  if (buf.length < DATA_HEADER_BYTES) {
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame of ${buf.length} bytes is shorter than its ${DATA_HEADER_BYTES}-byte header`);
  }
  if (buf[0] !== MAGIC0 || buf[1] !== MAGIC1) throw new SeedwireError('SEEDWIRE_BAD_FRAME', 'data frame has a bad magic');
  if (buf[2] !== DATA_VERSION) throw new SeedwireError('SEEDWIRE_PROTOCOL_VERSION', `data frame version ${buf[2]} is not ${DATA_VERSION}`);
  const codec = CODECS[(buf[3] ?? 0) & 0x03];
  if (codec === undefined) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame has unknown codec ${(buf[3] ?? 0) & 0x03}`);
  const offset = buf.readBigUInt64BE(8);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new SeedwireError('SEEDWIRE_BAD_FRAME', 'data frame offset too large');
  const hasCrc = ((buf[3] ?? 0) & FLAG_CRC) !== 0;
  return { stream: buf.readUInt32BE(4), offset: Number(offset), rawLength: buf.readUInt32BE(16), codec, crc: hasCrc ? buf.readUInt32BE(20) : null };
}

/** Decode, checking the payload's CRC when the frame carries one. The payload is a view into `buf`, not a copy. */
export function decodeDataFrame(buf: Buffer): DataFrame {
  const header = decodeDataHeader(buf);
  const payload = buf.subarray(DATA_HEADER_BYTES);
  if (header.crc !== null && crc32(payload) !== header.crc) {
    throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `data frame for stream ${header.stream} at offset ${header.offset}: CRC mismatch`);
  }
  if (header.codec === 'none' && payload.length !== header.rawLength) {
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `uncompressed data frame carries ${payload.length} bytes but says ${header.rawLength}`);
  }
  return { stream: header.stream, offset: header.offset, rawLength: header.rawLength, codec: header.codec, payload };
}
