/**
 * The seed stream: a deterministic byte encoding of a directory tree (docs/seed-stream.md).
 *
 * A stream is a sequence of records. Every record starts with an 8-byte prefix:
 *
 *   0  u8[2]  magic 'S' 'R'
 *   2  u8     format version (1)
 *   3  u8     record type: 1 dir, 2 file, 3 symlink, 4 end, 5 range
 *   4  u32be  length of the JSON header that follows (at most MAX_HEADER_JSON_BYTES)
 *
 * then the JSON header (UTF-8, keys always in the order below):
 *
 *   dir      {"path","mode","mtimeMs"}
 *   file     {"path","mode","mtimeMs","size"}   followed by `size` data bytes and the
 *                                              32-byte SHA-256 of those bytes (the trailer)
 *   symlink  {"path","mode","mtimeMs","target"}
 *   end      {"files","bytes","digest"}          the last record; nothing follows it
 *   range    {"path","mode","mtimeMs","size","offset","length"}   `length` bytes of the file at
 *                                              `offset` (of `size` in all), then their SHA-256
 *
 * `path` is relative to the tree's root, '/'-separated, never absolute, never with '.', '..' or
 * empty components. `mode` is the permission bits (mode & 0o7777), `mtimeMs` whole milliseconds.
 * `digest` is the hex SHA-256 over, for every file record in stream order, the UTF-8 line
 * `${path}\0${size}\0${sha256hex}\n` (a range record: `${path}\0${offset}+${length}/${size}\0${sha256hex}\n`);
 * `files` counts file records and range records at offset 0, `bytes` sums sizes (and range lengths).
 *
 * Range records only appear in a lane's stream (lanes.ts) when a seed runs over several lanes;
 * a one-lane stream is exactly the records above without them.
 *
 * Order: depth-first pre-order, siblings sorted bytewise by name (a directory's record comes
 * right before its contents). Because the order and every header byte depend only on the tree,
 * a tree that does not change (a snapshot, a stopped datadir) always yields the same bytes, so a
 * transfer can resume from any stream offset. Excluded names (record-rules.ts) are skipped at
 * every depth and never appear in a stream; a receiver refuses any record that carries one.
 *
 * This module encodes and parses single records; decoder.ts decodes a whole stream.
 */
import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';
import { SeedwireError } from '../../shared/errors.js';
import { checkRecordPath } from './record-rules.js';

export { isExcludedName } from './record-rules.js';

export const RECORD_PREFIX_BYTES = 8;
export const TRAILER_BYTES = 32;
/** Bounds the receiver's header buffer; a path is at most PATH_MAX (4096) anyway. */
export const MAX_HEADER_JSON_BYTES = 16 * 1024;
const MAGIC0 = 0x53; // 'S'
const MAGIC1 = 0x52; // 'R'
export const FORMAT_VERSION = 1;

export const RECORD_TYPES = { dir: 1, file: 2, symlink: 3, end: 4, range: 5 } as const;
export type RecordType = keyof typeof RECORD_TYPES;
const TYPE_BY_CODE: Record<number, RecordType> = { 1: 'dir', 2: 'file', 3: 'symlink', 4: 'end', 5: 'range' };

export interface DirHeader {
  type: 'dir';
  path: string;
  mode: number;
  mtimeMs: number;
}
export interface FileHeader {
  type: 'file';
  path: string;
  mode: number;
  mtimeMs: number;
  size: number;
}
/** `length` bytes of a file of `size` bytes, at `offset`: a part of a large file on one lane. */
export interface RangeHeader {
  type: 'range';
  path: string;
  mode: number;
  mtimeMs: number;
  size: number;
  offset: number;
  length: number;
}
export interface SymlinkHeader {
  type: 'symlink';
  path: string;
  mode: number;
  mtimeMs: number;
  target: string;
}
export interface EndHeader {
  type: 'end';
  files: number;
  bytes: number;
  digest: string;
}
export type EntryHeader = DirHeader | FileHeader | SymlinkHeader;
/** A record that carries file data: a whole file, or a range of one. */
export type DataHeader = FileHeader | RangeHeader;
export type RecordHeader = EntryHeader | RangeHeader | EndHeader;

/** The data bytes a file or range record carries. */
export function dataLength(h: DataHeader): number {
  return h.type === 'file' ? h.size : h.length;
}

/** Where a record's data lies in its file. */
export function dataOffset(h: DataHeader): number {
  return h.type === 'file' ? 0 : h.offset;
}

/** What a whole stream describes; returned by both sender and receiver. */
export interface TreeSummary {
  files: number;
  bytes: number;
  digest: string;
}

const Mode = z.number().int().min(0).max(0o7777);
const Mtime = z.number().int().min(0);
const PathField = z.string().min(1).max(4096);
const Size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const JSON_SCHEMAS = {
  dir: z.object({ path: PathField, mode: Mode, mtimeMs: Mtime }).strict(),
  file: z.object({ path: PathField, mode: Mode, mtimeMs: Mtime, size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) }).strict(),
  symlink: z.object({ path: PathField, mode: Mode, mtimeMs: Mtime, target: z.string().min(1).max(4096) }).strict(),
  range: z
    .object({ path: PathField, mode: Mode, mtimeMs: Mtime, size: Size, offset: Size, length: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) })
    .strict()
    .refine((h) => h.offset + h.length <= h.size, { message: 'offset + length is past the file size' }),
  end: z.object({ files: z.number().int().nonnegative(), bytes: z.number().int().nonnegative(), digest: z.string().regex(/^[0-9a-f]{64}$/) }).strict(),
} as const;

/** The JSON text of a header, keys in the documented order (the stream's determinism rests on it). */
function headerJson(h: RecordHeader): string {
  switch (h.type) {
    case 'dir':
      return JSON.stringify({ path: h.path, mode: h.mode, mtimeMs: h.mtimeMs });
    case 'file':
      return JSON.stringify({ path: h.path, mode: h.mode, mtimeMs: h.mtimeMs, size: h.size });
    case 'symlink':
      return JSON.stringify({ path: h.path, mode: h.mode, mtimeMs: h.mtimeMs, target: h.target });
    case 'range':
      return JSON.stringify({ path: h.path, mode: h.mode, mtimeMs: h.mtimeMs, size: h.size, offset: h.offset, length: h.length });
    case 'end':
      return JSON.stringify({ files: h.files, bytes: h.bytes, digest: h.digest });
  }
}

/** Prefix + JSON header of one record (file data and trailer are not included). */
export function encodeRecordHeader(h: RecordHeader): Buffer {
  const json = Buffer.from(headerJson(h), 'utf8');
  if (json.length > MAX_HEADER_JSON_BYTES) {
    throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `record header for ${'path' in h ? h.path : 'end'} is ${json.length} bytes (max ${MAX_HEADER_JSON_BYTES})`);
  }
  const out = Buffer.allocUnsafe(RECORD_PREFIX_BYTES + json.length);
  out[0] = MAGIC0;
  out[1] = MAGIC1;
  out[2] = FORMAT_VERSION;
  out[3] = RECORD_TYPES[h.type];
  out.writeUInt32BE(json.length, 4);
  json.copy(out, RECORD_PREFIX_BYTES);
  return out;
}

/** Bytes a record occupies in the stream, given its encoded header length. */
export function recordLength(h: RecordHeader, headerBytes: number): number {
  return h.type === 'file' || h.type === 'range' ? headerBytes + dataLength(h) + TRAILER_BYTES : headerBytes;
}

export function parseRecordPrefix(buf: Buffer): { type: RecordType; jsonLength: number } {
  if (buf.length < RECORD_PREFIX_BYTES) throw new SeedwireError('SEEDWIRE_BAD_FRAME', 'seed record prefix is truncated');
  if (buf[0] !== MAGIC0 || buf[1] !== MAGIC1) throw new SeedwireError('SEEDWIRE_BAD_FRAME', 'seed record has a bad magic (stream out of step)');
  if (buf[2] !== FORMAT_VERSION) throw new SeedwireError('SEEDWIRE_PROTOCOL_VERSION', `seed stream format ${buf[2]} is not ${FORMAT_VERSION}`);
  const type = TYPE_BY_CODE[buf[3] ?? 0];
  if (type === undefined) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `seed record has unknown type ${buf[3]}`);
  const jsonLength = buf.readUInt32BE(4);
  if (jsonLength === 0 || jsonLength > MAX_HEADER_JSON_BYTES) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `seed record header of ${jsonLength} bytes`);
  return { type, jsonLength };
}

/** Parses and validates a record's JSON header; entry paths must pass record-rules.checkRecordPath. */
export function parseRecordJson(type: RecordType, json: Buffer): RecordHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json.toString('utf8'));
  } catch {
    // No cause: the parser's message quotes the peer's bytes, which never go into errors or logs.
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `seed ${type} record header is not JSON`);
  }
  const parsed = JSON_SCHEMAS[type].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Unknown keys are the peer's text: counted, not quoted.
    const why = issue?.code === 'unrecognized_keys' ? `${issue.keys.length} unknown key(s)` : (issue?.message ?? 'invalid');
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `bad seed ${type} record at ${issue?.path.join('.') || 'header'}: ${why}`);
  }
  const header = { type, ...parsed.data } as RecordHeader;
  if (header.type !== 'end') checkRecordPath(header.path);
  return header;
}

/** Bytewise order of UTF-8 names (not UTF-16 code units, which differ above U+FFFF). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** One line of the whole-stream digest. */
export interface DigestEntry {
  path: string;
  size: number;
  sha256: string;
  /** A range record's part of the file (absent for a whole file). */
  range?: { offset: number; length: number };
}

/** The digest entry of a data record with its hash. */
export function digestEntryOf(h: DataHeader, sha256: string): DigestEntry {
  return h.type === 'file' ? { path: h.path, size: h.size, sha256 } : { path: h.path, size: h.size, sha256, range: { offset: h.offset, length: h.length } };
}

/** Accumulates the end record's digest over file entries in stream order. */
export class TreeDigest {
  private readonly hash: Hash = createHash('sha256');
  files = 0;
  bytes = 0;
  /** Entries added (a file's ranges each count here, once in `files`). */
  entries = 0;

  add(entry: DigestEntry): void {
    this.entries += 1;
    const { range } = entry;
    if (range) {
      // Distinct from a file's line: its second field is not a plain number.
      this.hash.update(`${entry.path}\0${range.offset}+${range.length}/${entry.size}\0${entry.sha256}\n`, 'utf8');
      if (range.offset === 0) this.files += 1;
      this.bytes += range.length;
      return;
    }
    this.hash.update(`${entry.path}\0${entry.size}\0${entry.sha256}\n`, 'utf8');
    this.files += 1;
    this.bytes += entry.size;
  }

  summary(): TreeSummary {
    // A copy: the digest so far, and more entries may still be added.
    return { files: this.files, bytes: this.bytes, digest: this.hash.copy().digest('hex') };
  }
}

/** The header fields of a stat'd entry, normalised so the same tree gives the same bytes. */
export function normaliseMode(mode: number): number {
  return mode & 0o7777;
}
export function normaliseMtime(mtimeMs: number): number {
  return Math.max(0, Math.trunc(mtimeMs));
}
