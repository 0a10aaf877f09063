/**
 * A pure decoder of the seed stream (format.ts): bytes in, events out, no file system. The
 * receiver pushes each chunk and pulls events one at a time, so the decoder's position is
 * always just past the last event the receiver handled.
 *
 * It refuses, before any event names the record: a bad prefix or header (SEEDWIRE_BAD_FRAME),
 * an unsafe or excluded path (record-rules.ts, SEEDWIRE_PATH_ESCAPE), and a file whose declared
 * size takes the stream past `maxBytes` (SEEDWIRE_PATH_ESCAPE). Symlink targets, modes and
 * writes through symlinks are the tree writer's to judge (safe-tree.ts): they depend on where
 * the tree lives.
 */
import { SeedwireError } from '../../shared/errors.js';
import {
  MAX_HEADER_JSON_BYTES,
  parseRecordJson,
  parseRecordPrefix,
  RECORD_PREFIX_BYTES,
  TRAILER_BYTES,
  dataLength,
  type DataHeader,
  type DirHeader,
  type EndHeader,
  type FileHeader,
  type RangeHeader,
  type RecordType,
  type SymlinkHeader,
} from './format.js';
import { DeclaredBytesBudget } from './record-rules.js';

export type SeedEvent =
  /** A record's header; for a file or range, its data starts at `end`. */
  | { kind: 'entry'; header: DirHeader | FileHeader | SymlinkHeader | RangeHeader; start: number; end: number }
  /** File data (a view into the pushed chunk, not a copy). */
  | { kind: 'data'; bytes: Buffer; end: number }
  /** The current file's (or range's) 32-byte SHA-256 as the sender computed it. */
  | { kind: 'trailer'; sha256: Buffer; end: number }
  /** The end record; nothing may follow. */
  | { kind: 'end'; header: EndHeader; end: number };

export interface DecoderOptions {
  /** Stream offset of the first byte pushed (a resume point); default 0. */
  offset?: number;
  /** Resuming inside a file's (or range's) data: its header and how many of its bytes came before `offset`. */
  inFile?: { header: DataHeader; written: number };
  /** Most file bytes the stream may declare in all; null or absent: no limit. */
  maxBytes?: number | null;
  /** File bytes declared before `offset` (counted against maxBytes). */
  declaredBefore?: number;
}

type Phase = 'prefix' | 'json' | 'data' | 'trailer' | 'done';

export class SeedStreamDecoder {
  private phase: Phase = 'prefix';
  private pos: number;
  private recordStart: number;
  private readonly acc = Buffer.allocUnsafe(Math.max(MAX_HEADER_JSON_BYTES, TRAILER_BYTES, RECORD_PREFIX_BYTES));
  private accFill = 0;
  private need = RECORD_PREFIX_BYTES;
  private recordType: RecordType = 'end';
  private dataLeft = 0;
  private chunk: Buffer = Buffer.alloc(0);
  private chunkPos = 0;
  private readonly budget: DeclaredBytesBudget;

  constructor(options: DecoderOptions = {}) {
    this.pos = options.offset ?? 0;
    this.recordStart = this.pos;
    this.budget = new DeclaredBytesBudget(options.maxBytes ?? null, options.declaredBefore ?? 0);
    if (options.inFile) {
      const { header, written } = options.inFile;
      this.dataLeft = dataLength(header) - written;
      this.recordStart = this.pos - written;
      if (this.dataLeft > 0) this.expect('data', 0);
      else this.expect('trailer', TRAILER_BYTES);
    }
  }

  /** Stream offset just past the last event pulled. */
  get offset(): number {
    return this.pos;
  }

  /** Where the record being decoded starts (a resume point when not inside file data). */
  get recordOffset(): number {
    return this.recordStart;
  }

  get done(): boolean {
    return this.phase === 'done';
  }

  /** File bytes declared so far, the current file's included. */
  get declaredBytes(): number {
    return this.budget.total;
  }

  /** Bytes pushed and not yet decoded. */
  get pending(): number {
    return this.chunk.length - this.chunkPos;
  }

  /** Hands over the next bytes; every event of the previous chunk must have been pulled. */
  push(bytes: Buffer): void {
    if (this.pending > 0) throw new SeedwireError('SEEDWIRE_INTERNAL', 'seed decoder: push before the previous chunk was decoded');
    this.chunk = bytes;
    this.chunkPos = 0;
  }

  /** The next event, or null when the pushed bytes are used up. */
  next(): SeedEvent | null {
    while (this.chunkPos < this.chunk.length) {
      switch (this.phase) {
        case 'done':
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `seed stream carries bytes after its end record (offset ${this.pos})`);
        case 'data': {
          const n = Math.min(this.dataLeft, this.chunk.length - this.chunkPos);
          const bytes = this.chunk.subarray(this.chunkPos, this.chunkPos + n);
          this.chunkPos += n;
          this.pos += n;
          this.dataLeft -= n;
          if (this.dataLeft === 0) this.expect('trailer', TRAILER_BYTES);
          return { kind: 'data', bytes, end: this.pos };
        }
        default: {
          const n = Math.min(this.need - this.accFill, this.chunk.length - this.chunkPos);
          this.chunk.copy(this.acc, this.accFill, this.chunkPos, this.chunkPos + n);
          this.accFill += n;
          this.chunkPos += n;
          this.pos += n;
          if (this.accFill < this.need) break;
          const event = this.completePart();
          if (event) return event;
        }
      }
    }
    return null;
  }

  /** The input ended: refuses a stream that stops before its end record. */
  finish(): void {
    if (this.phase !== 'done') throw new SeedwireError('SEEDWIRE_DISCONNECTED', `seed stream ended at offset ${this.pos} before its end record`);
  }

  private completePart(): SeedEvent | null {
    switch (this.phase) {
      case 'prefix': {
        const { type, jsonLength } = parseRecordPrefix(this.acc.subarray(0, RECORD_PREFIX_BYTES));
        this.recordType = type;
        this.expect('json', jsonLength);
        return null;
      }
      case 'json': {
        const header = parseRecordJson(this.recordType, this.acc.subarray(0, this.need));
        const start = this.recordStart;
        if (header.type === 'end') {
          this.phase = 'done';
          return { kind: 'end', header, end: this.pos };
        }
        if (header.type === 'file' || header.type === 'range') {
          this.budget.add(header.path, dataLength(header));
          this.dataLeft = dataLength(header);
          if (this.dataLeft > 0) this.expect('data', 0);
          else this.expect('trailer', TRAILER_BYTES);
        } else {
          this.expect('prefix', RECORD_PREFIX_BYTES);
          this.recordStart = this.pos;
        }
        return { kind: 'entry', header, start, end: this.pos };
      }
      case 'trailer': {
        const sha256 = Buffer.from(this.acc.subarray(0, TRAILER_BYTES));
        this.expect('prefix', RECORD_PREFIX_BYTES);
        this.recordStart = this.pos;
        return { kind: 'trailer', sha256, end: this.pos };
      }
      default:
        return null;
    }
  }

  private expect(phase: Phase, need: number): void {
    this.phase = phase;
    this.need = need;
    this.accFill = 0;
  }
}
