/**
 * Data frames (shared/codec.ts) out of the pieces of binary messages (ws-reader.ts), pure: an
 * uncompressed frame without a CRC is handed on piece by piece as it arrives, each piece a chunk
 * of its own (its stream offset and length; a view of the socket's bytes, never copied), so a
 * receiver starts hashing and writing before the frame is whole and no 1 MiB buffer is assembled.
 * A compressed frame, or one with a CRC, needs all of its payload: it is gathered and decoded as
 * a whole (decodeDataFrame, the same checks as a frame from ws).
 *
 * Refused (SEEDWIRE_BAD_FRAME): a frame of another stream, a header cut short, an uncompressed
 * payload longer or shorter than its raw length says. An empty frame (a streamed seed's end) is
 * handed on as one empty chunk.
 */
import { DATA_HEADER_BYTES, decodeDataFrame, decodeDataHeader, type Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { ReceivedChunk } from './types.js';

type Mode =
  /** Gathering the 24-byte header. */
  | 'head'
  /** Handing on pieces of an uncompressed frame. */
  | 'stream'
  /** Gathering the whole frame. */
  | 'whole';

export class DataFrameAssembler {
  private readonly head = Buffer.alloc(DATA_HEADER_BYTES);
  private headFill = 0;
  private mode: Mode = 'head';
  private offset = 0;
  private rawLength = 0;
  private done = 0;
  private gathered: Buffer[] = [];

  constructor(
    private readonly stream: number,
    private readonly emit: (chunk: ReceivedChunk) => void,
  ) {}

  /** A binary message begins. */
  start(): void {
    this.headFill = 0;
    this.mode = 'head';
    this.done = 0;
    this.gathered = [];
  }

  piece(bytes: Buffer): void {
    let rest = bytes;
    if (this.mode === 'head') {
      const n = Math.min(DATA_HEADER_BYTES - this.headFill, rest.length);
      rest.copy(this.head, this.headFill, 0, n);
      this.headFill += n;
      rest = rest.subarray(n);
      if (this.headFill < DATA_HEADER_BYTES) return;
      this.startFrame();
    }
    if (rest.length === 0) return;
    if (this.mode === 'whole') {
      this.gathered.push(rest);
      return;
    }
    if (this.done + rest.length > this.rawLength) {
      throw new SeedwireError('SEEDWIRE_BAD_FRAME', `uncompressed data frame at offset ${this.offset} carries more than the ${this.rawLength} bytes it says`);
    }
    const offset = this.offset + this.done;
    this.done += rest.length;
    this.emit(this.done < this.rawLength ? { offset, rawLength: rest.length, codec: 'none', payload: rest, more: true } : { offset, rawLength: rest.length, codec: 'none', payload: rest });
  }

  /** The message ended: the frame must be whole. */
  end(): void {
    if (this.mode === 'head') {
      throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame of ${this.headFill} bytes is shorter than its ${DATA_HEADER_BYTES}-byte header`);
    }
    if (this.mode === 'whole') {
      const frame = decodeDataFrame(Buffer.concat([this.head, ...this.gathered]));
      this.gathered = [];
      this.emit({ offset: frame.offset, rawLength: frame.rawLength, codec: frame.codec, payload: frame.payload });
    } else if (this.done !== this.rawLength) {
      throw new SeedwireError('SEEDWIRE_BAD_FRAME', `uncompressed data frame carries ${this.done} bytes but says ${this.rawLength}`);
    } else if (this.rawLength === 0) {
      this.emit({ offset: this.offset, rawLength: 0, codec: 'none', payload: Buffer.alloc(0) });
    }
    this.mode = 'head';
    this.headFill = 0;
  }

  private startFrame(): void {
    const header = decodeDataHeader(this.head);
    if (header.stream !== this.stream) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `stream ${this.stream}: a frame of stream ${header.stream} on its data connection`);
    this.offset = header.offset;
    this.rawLength = header.rawLength;
    this.done = 0;
    this.mode = isStreamable(header.codec, header.crc) ? 'stream' : 'whole';
  }
}

function isStreamable(codec: Codec, crc: number | null): boolean {
  return codec === 'none' && crc === null;
}
