/**
 * An incremental reader of the xbstream chunk framing (what `mariabackup --stream=xbstream` and
 * `xtrabackup --stream=xbstream` write, and `mbstream -x` / `xbstream -x` extract). It never
 * buffers payloads: it reads each chunk's header, checks its path, and skips the payload.
 *
 * Both ends of a `backup` seed run every byte through it: the target before the bytes reach the
 * extractor, holding back the bytes of a chunk header until the whole header is checked
 * (`unvalidatedBytes`), so a hostile path (absolute, `..`, an excluded name such as the seed
 * marker, control characters, not UTF-8; record-rules.ts) or a total past `maxBytes` is refused
 * before the extractor sees any of it; the source to count the files it sends and to pick up
 * `xtrabackup_binlog_info`.
 *
 * Chunk layout (integers little-endian):
 *   magic "XBSTCK01" (8) | flags (1) | type (1) | path length (4) | path
 *   type 'E' (end of a file): nothing more
 *   type 'S' (sparse): sparse map entries (4), then as 'P' but the sparse map (8 × entries) comes
 *     between the checksum and the payload
 *   type 'P' (payload), or an unknown type with the ignorable flag: payload length (8) |
 *     payload offset (8) | CRC-32 (4) | payload
 * An unknown type without the ignorable flag is refused, as the extractors refuse it.
 */
import { SeedwireError } from '../../shared/errors.js';
import { checkRecordPath, DeclaredBytesBudget, refuseRecord } from './record-rules.js';

const MAGIC = Buffer.from('XBSTCK01', 'latin1');
const CONSTANT_HEADER_BYTES = 14;
/** FN_REFLEN: the extractors refuse longer paths. */
const MAX_PATH_BYTES = 511;
const FLAG_IGNORABLE = 0x01;
const TYPE_PAYLOAD = 0x50; // 'P'
const TYPE_SPARSE = 0x53; // 'S'
const TYPE_EOF = 0x45; // 'E'
/** Files whose content the inspector keeps (small metadata the seed reports). */
const CAPTURED = new Set(['xtrabackup_binlog_info']);
const MAX_CAPTURE_BYTES = 64 * 1024;

type Phase = 'header' | 'path' | 'sparse-count' | 'lengths' | 'skip';

export interface XbstreamInspectorOptions {
  /** Most payload bytes the stream may declare in all; null or absent: no limit. */
  maxBytes?: number | null;
}

export class XbstreamInspector {
  /** Normalized paths of the files the stream creates (what `files` counts). */
  readonly paths = new Set<string>();
  /** Stream bytes consumed so far. */
  bytes = 0;
  chunks = 0;
  private readonly captured = new Map<string, Buffer[]>();
  private phase: Phase = 'header';
  private readonly acc = Buffer.allocUnsafe(MAX_PATH_BYTES + 32);
  private accFill = 0;
  private need = CONSTANT_HEADER_BYTES;
  private type = 0;
  private flags = 0;
  private path = '';
  private sparseEntries = 0;
  /** Bytes to pass over (sparse map plus payload) and how many of them are payload. */
  private skipLeft = 0;
  private payloadLeft = 0;
  private capture: Buffer[] | null = null;
  private chunkStart = 0;
  private readonly budget: DeclaredBytesBudget;

  constructor(options: XbstreamInspectorOptions = {}) {
    this.budget = new DeclaredBytesBudget(options.maxBytes ?? null);
  }

  get files(): number {
    return this.paths.size;
  }

  /**
   * Bytes at the end of what was pushed that belong to a chunk header not yet wholly checked:
   * the target holds them back from the extractor until the header is complete and accepted.
   */
  get unvalidatedBytes(): number {
    return this.phase === 'skip' ? 0 : this.bytes - this.chunkStart;
  }

  /** Consumes the next bytes of the stream; throws SEEDWIRE_PATH_ESCAPE or SEEDWIRE_BAD_FRAME. */
  push(buf: Buffer): void {
    let pos = 0;
    while (pos < buf.length) {
      if (this.phase === 'skip') {
        const n = Math.min(this.skipLeft, buf.length - pos);
        const payloadFrom = this.skipLeft - this.payloadLeft; // sparse map bytes still ahead of the payload
        if (this.capture && n > payloadFrom) this.keep(buf.subarray(pos + Math.max(0, payloadFrom), pos + n));
        this.skipLeft -= n;
        this.payloadLeft = Math.min(this.payloadLeft, this.skipLeft);
        pos += n;
        this.bytes += n;
        if (this.skipLeft === 0) this.nextChunk();
        continue;
      }
      const n = Math.min(this.need - this.accFill, buf.length - pos);
      buf.copy(this.acc, this.accFill, pos, pos + n);
      this.accFill += n;
      pos += n;
      this.bytes += n;
      if (this.accFill === this.need) this.completePart();
    }
  }

  /** The stream ended: it must end between chunks. */
  end(): void {
    if (this.phase !== 'header' || this.accFill !== 0) {
      throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `the backup stream ends inside a chunk (at byte ${this.bytes}; the chunk started at ${this.chunkStart})`);
    }
  }

  /** The content of a captured metadata file (e.g. xtrabackup_binlog_info), or null. */
  capturedText(path: string): string | null {
    const parts = this.captured.get(path);
    return parts ? Buffer.concat(parts).toString('utf8') : null;
  }

  private keep(bytes: Buffer): void {
    const parts = this.capture as Buffer[];
    const held = parts.reduce((sum, b) => sum + b.length, 0);
    if (held + bytes.length <= MAX_CAPTURE_BYTES) parts.push(Buffer.from(bytes));
  }

  private completePart(): void {
    switch (this.phase) {
      case 'header': {
        if (!this.acc.subarray(0, 8).equals(MAGIC)) {
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `the backup stream has no chunk magic at byte ${this.bytes - CONSTANT_HEADER_BYTES}: not an xbstream, or out of step`);
        }
        this.flags = this.acc[8] as number;
        this.type = this.acc[9] as number;
        const known = this.type === TYPE_PAYLOAD || this.type === TYPE_SPARSE || this.type === TYPE_EOF;
        if (!known && (this.flags & FLAG_IGNORABLE) === 0) {
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `the backup stream has a chunk of unknown type 0x${this.type.toString(16)} at byte ${this.chunkStart}`);
        }
        const pathLength = this.acc.readUInt32LE(10);
        if (pathLength > MAX_PATH_BYTES) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `the backup stream has a path of ${pathLength} bytes at byte ${this.chunkStart}`);
        if (pathLength === 0) throw refuseRecord('', `the backup stream has a chunk without a path at byte ${this.chunkStart}`);
        this.expect('path', pathLength);
        return;
      }
      case 'path': {
        this.path = normalizeStreamPath(this.acc.subarray(0, this.need));
        const known = this.type === TYPE_PAYLOAD || this.type === TYPE_SPARSE || this.type === TYPE_EOF;
        if (known) this.paths.add(this.path);
        if (this.type === TYPE_EOF) {
          this.nextChunk();
          return;
        }
        if (this.type === TYPE_SPARSE) this.expect('sparse-count', 4);
        else this.expect('lengths', 20);
        return;
      }
      case 'sparse-count':
        this.sparseEntries = this.acc.readUInt32LE(0);
        this.expect('lengths', 20);
        return;
      case 'lengths': {
        const payload = this.acc.readBigUInt64LE(0);
        if (payload > BigInt(Number.MAX_SAFE_INTEGER)) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `the backup stream has a chunk of ${payload} bytes at byte ${this.chunkStart}`);
        this.payloadLeft = Number(payload);
        this.budget.add(this.path, this.payloadLeft);
        this.skipLeft = this.payloadLeft + this.sparseEntries * 8;
        const known = this.type === TYPE_PAYLOAD || this.type === TYPE_SPARSE;
        if (known && CAPTURED.has(this.path)) {
          this.capture = this.captured.get(this.path) ?? [];
          this.captured.set(this.path, this.capture);
        }
        this.phase = 'skip';
        if (this.skipLeft === 0) this.nextChunk();
        return;
      }
      default:
        return;
    }
  }

  private expect(phase: Phase, need: number): void {
    this.phase = phase;
    this.need = need;
    this.accFill = 0;
  }

  private nextChunk(): void {
    this.chunks += 1;
    this.capture = null;
    this.sparseEntries = 0;
    this.skipLeft = 0;
    this.payloadLeft = 0;
    this.chunkStart = this.bytes;
    this.expect('header', CONSTANT_HEADER_BYTES);
  }
}

/**
 * A stream path made relative and `/`-separated without `.` or empty components (as the backup
 * tools write them), then held to the receiver's rules (record-rules.checkRecordPath): refuses
 * (SEEDWIRE_PATH_ESCAPE) bytes that are not UTF-8, absolute paths, `..`, control characters and
 * excluded names at any depth (the seed marker among them).
 */
export function normalizeStreamPath(raw: Buffer): string {
  const text = raw.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(raw)) throw refuseRecord(text, 'the backup stream path is not UTF-8');
  if (text.startsWith('/')) throw refuseRecord(text, 'it is absolute');
  const path = text
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .join('/');
  if (path === '') throw refuseRecord(text, 'it names no file');
  checkRecordPath(path);
  return path;
}

/** `file<TAB>position[<TAB>gtid]` as in xtrabackup_binlog_info; null when it does not parse. */
export function parseBinlogInfo(text: string): { file: string; position: number; gtid?: string } | null {
  const line = text.trim();
  if (!line) return null;
  const [file, position, ...rest] = line.split('\t');
  if (!file || !position || !/^\d+$/.test(position.trim())) return null;
  const gtid = rest.join('\t').replace(/\s+/g, '').trim();
  return { file: file.trim().split('/').at(-1) as string, position: Number(position.trim()), ...(gtid ? { gtid } : {}) };
}

/** The coordinates mariabackup/xtrabackup print at the end of a backup; null when the line is not one. */
export function parseBinlogLine(line: string): { file: string; position: number; gtid?: string } | null {
  const m = /MySQL binlog position: filename '([^']+)', position '?(\d+)'?(?:, GTID of the last change '([^']*)')?/.exec(line);
  if (!m) return null;
  const gtid = m[3]?.trim();
  return { file: (m[1] as string).split('/').at(-1) as string, position: Number(m[2]), ...(gtid ? { gtid } : {}) };
}
