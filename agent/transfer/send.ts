/**
 * The sending side of a seed: turns a directory tree into the seed stream (format.ts) and pushes
 * it through a SendPort in chunks of raw stream bytes, from any offset.
 *
 * Speed: file data is read with large positioned reads straight into the chunk buffer that is
 * hashed and sent (uncompressed, the buffer is the data frame itself: SendPort's in-place send),
 * so each byte is touched by the hash and (when asked) the compressor only.
 * Up to `depth` chunks are in flight (compressing or waiting for credit) while the next one is
 * read, so disk, CPU and link overlap. Memory stays at (depth + 1) chunks.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DATA_HEADER_BYTES, type Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import type { SendPort } from '../streams/types.js';
import type { Lane } from '../../shared/lanes.js';
import { createChunkCodec, type ChunkCodec } from './compress.js';
import { createContentHash, type ContentHash, type ContentHashName } from './content-hash.js';
import { dataLength, dataOffset, digestEntryOf, encodeRecordHeader, recordLength, TreeDigest, type DataHeader, type TreeSummary } from './format.js';
import { loadHashCache, openHashCacheWriter, type HashCacheWriter } from './hash-cache.js';
import { isDataHeader, LaneAssigner } from './lanes.js';
import { RateLimiter } from './throttle.js';
import { walkTree } from './walk.js';

export interface SendCommonOptions {
  port: SendPort;
  compression: Codec;
  /** Compression level (gzip 1-9, zstd 1-19); default 1. */
  level?: number;
  signal: AbortSignal;
  /** Called with the stream offset up to which bytes have been handed to the port. */
  onProgress?: (sent: number) => void;
  /** Raw bytes per data frame; default LIMITS.chunkBytes. */
  chunkBytes?: number;
  /** Bandwidth cap in raw bytes per second (a seed's `maxBytesPerSec`); none by default. */
  maxBytesPerSec?: number;
}

export interface SendTreeOptions extends SendCommonOptions {
  root: string;
  /** Stream offset to start from (the receiver's committed offset); 0 for a fresh transfer. */
  offset: number;
  /**
   * A file (in the agent's stateDir) remembering each sent file's content hash, so that a resumed send
   * need not re-read the files before `offset` to compute the end digest. Optional: without it
   * those files are re-hashed from disk.
   */
  hashCachePath?: string;
  /** Send only this lane's part of the tree (lanes.ts); absent: the whole tree as one stream. */
  lane?: Lane;
  /** How file contents are hashed (the seed's choice, content-hash.ts); default sha256. The hash cache must be this hash's. */
  contentHash?: ContentHashName;
  /** Range size of a lane's split files; tests only. @default DEFAULT_RANGE_BYTES */
  rangeBytes?: number;
}

/** Where the hash cache remembers a record's hash: a file by its path, a range by path and place. */
function cacheKey(h: DataHeader): string {
  return h.type === 'file' ? h.path : `${h.path}\0${h.offset}+${h.length}`;
}

export async function sendTree(options: SendTreeOptions): Promise<TreeSummary> {
  const { root, offset, signal } = options;
  const hashName = options.contentHash ?? 'sha256';
  const cache = offset > 0 && options.hashCachePath ? await loadHashCache(options.hashCachePath) : new Map();
  const cacheWriter: HashCacheWriter | null = options.hashCachePath ? await openHashCacheWriter(options.hashCachePath, offset === 0) : null;
  const sink = new ChunkSink(options, offset);
  const digest = new TreeDigest();
  const scratch = { buf: null as Buffer | null };
  const assigner = options.lane ? new LaneAssigner({ count: options.lane.count, ...(options.rangeBytes === undefined ? {} : { rangeBytes: options.rangeBytes }) }) : null;
  let pos = 0; // stream offset where the current record starts
  try {
    for await (const entry of walkTree(root, signal)) {
      const records = assigner && options.lane ? assigner.unitsFor(entry.header, options.lane.index) : [entry.header];
      for (const header of records) {
        const head = encodeRecordHeader(header);
        const end = pos + recordLength(header, head.length);
        if (end <= offset) {
          // A record the receiver already has: only its hash is needed, for the end digest.
          if (isDataHeader(header)) {
            const cached = cache.get(cacheKey(header));
            const sha256 =
              cached && cached.size === header.size && cached.mtimeMs === header.mtimeMs ? cached.sha256 : await hashFile(hashName, entry.abs, dataOffset(header), dataLength(header), scratch, signal);
            digest.add(digestEntryOf(header, sha256));
          }
          pos = end;
          continue;
        }
        let from = Math.max(0, offset - pos); // bytes of this record already received
        if (from < head.length) {
          await sink.append(head.subarray(from));
          from = head.length;
        }
        if (isDataHeader(header)) {
          const { path, size, mtimeMs } = header;
          const base = dataOffset(header);
          const length = dataLength(header);
          const dataFrom = from - head.length;
          const hash = createContentHash(hashName);
          if (header.type === 'file' && dataFrom === 0 && length <= SMALL_FILE_BYTES) {
            // A small file is read with synchronous calls, as tar does (see ChunkSink.appendSmallFile).
            await sink.appendSmallFile(entry.abs, length, hash, path);
          } else {
            const fh = await open(entry.abs, 'r');
            try {
              // Resuming inside this record: its trailer covers all of it, so hash the part already sent.
              if (dataFrom > 0) await hashRange(fh, base, Math.min(dataFrom, length), hash, scratch, path, signal);
              if (dataFrom < length) await sink.appendFile(fh, base + dataFrom, length - dataFrom, hash, path);
            } finally {
              await fh.close();
            }
          }
          const sha = hash.digest();
          await sink.append(sha.subarray(Math.max(0, dataFrom - length)));
          const sha256 = sha.toString('hex');
          digest.add(digestEntryOf(header, sha256));
          cacheWriter?.add({ path: cacheKey(header), size, mtimeMs, sha256 });
        }
        pos = end;
      }
    }
    const summary = digest.summary();
    const endHead = encodeRecordHeader({ type: 'end', ...summary });
    if (offset > pos + endHead.length) {
      throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `offset ${offset} is past the end of the seed stream (${pos + endHead.length} bytes)`);
    }
    await sink.append(endHead.subarray(Math.max(0, offset - pos)));
    await sink.finish();
    return summary;
  } catch (error) {
    await sink.abandon();
    throw error;
  } finally {
    await cacheWriter?.close();
  }
}

export interface SendStreamOptions extends SendCommonOptions {
  input: Readable;
  /** A pipe cannot seek: always 0. */
  offset: number;
  /**
   * Runs once the input has ended, before the end of the stream is signalled: throw to withhold
   * it (the program writing the input failed, so what was sent is not a whole stream).
   */
  beforeEnd?: () => Promise<void>;
}

/**
 * Sends a non-seekable byte stream (a mariabackup/xtrabackup stream) verbatim, chunked and
 * credit-paced like sendTree. No records and no resume; the digest is the SHA-256 of all bytes.
 * The end of the stream is an empty data frame at the final offset (a raw stream has no end
 * record), sent only after every data frame and after `beforeEnd` succeeded.
 */
export async function sendStream(options: SendStreamOptions): Promise<TreeSummary> {
  if (options.offset !== 0) throw new SeedwireError('SEEDWIRE_BAD_PARAMS', 'a streamed source cannot resume: offset must be 0');
  const sink = new ChunkSink(options, 0);
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const piece of options.input) {
      options.signal.throwIfAborted();
      const buf = Buffer.isBuffer(piece) ? piece : Buffer.from(piece as string);
      hash.update(buf);
      bytes += buf.length;
      await sink.append(buf);
    }
    await options.beforeEnd?.();
    await sink.finish();
    await options.port.ready(bytes, 0, options.signal);
    options.port.send(bytes, 0, 'none', Buffer.alloc(0));
    return { files: 0, bytes, digest: hash.digest('hex') };
  } catch (error) {
    await sink.abandon();
    options.input.destroy();
    throw error;
  }
}

const HASH_READ_BYTES = 4 * 1024 * 1024;
/** A whole file up to this size is read with synchronous calls (ChunkSink.appendSmallFile). */
const SMALL_FILE_BYTES = 256 * 1024;

async function hashRange(fh: FileHandle, start: number, length: number, hash: ContentHash, scratch: { buf: Buffer | null }, path: string, signal: AbortSignal): Promise<void> {
  scratch.buf ??= Buffer.allocUnsafeSlow(HASH_READ_BYTES);
  const buf = scratch.buf;
  let done = 0;
  while (done < length) {
    signal.throwIfAborted();
    const want = Math.min(buf.length, length - done);
    const { bytesRead } = await fh.read(buf, 0, want, start + done);
    if (bytesRead === 0) throw changedWhileSending(path);
    hash.update(buf.subarray(0, bytesRead));
    done += bytesRead;
  }
}

async function hashFile(hashName: ContentHashName, abs: string, start: number, length: number, scratch: { buf: Buffer | null }, signal: AbortSignal): Promise<string> {
  const hash = createContentHash(hashName);
  const fh = await open(abs, 'r');
  try {
    await hashRange(fh, start, length, hash, scratch, abs, signal);
  } finally {
    await fh.close();
  }
  return hash.digest().toString('hex');
}

function changedWhileSending(path: string): SeedwireError {
  return new SeedwireError('SEEDWIRE_VERIFY_FAILED', `source file ${path} changed while being sent (it is shorter than when listed); seed from a snapshot or a stopped server`);
}

/** Room past a chunk for zstd's worst case: compressBound(n) is n + n/256 + a few hundred bytes. */
function compressRoomBytes(chunkBytes: number): number {
  return Math.ceil(chunkBytes / 128) + 4096;
}

/**
 * Packs stream bytes into chunk buffers and hands full chunks to the port in order. A chunk is
 * compressed as soon as it is full; sending waits for the previous chunk and for port.ready.
 */
class ChunkSink {
  private readonly port: SendPort;
  private readonly codec: ChunkCodec;
  private readonly chunkBytes: number;
  private readonly signal: AbortSignal;
  private readonly onProgress: ((sent: number) => void) | undefined;
  /** Chunks compressing or waiting to be sent (oldest first). */
  private readonly inFlight: Array<Promise<void>> = [];
  private readonly depth: number;
  private readonly free: Buffer[] = [];
  private buf: Buffer;
  private fill = 0;
  /** Stream offset of buf[0]. */
  private base: number;
  private last: Promise<void> = Promise.resolve();
  private readonly limiter: RateLimiter | null;

  constructor(options: SendCommonOptions, offset: number) {
    this.limiter = options.maxBytesPerSec ? new RateLimiter(options.maxBytesPerSec) : null;
    this.port = options.port;
    this.codec = createChunkCodec(options.compression, options.level === undefined ? {} : { level: options.level });
    this.chunkBytes = options.chunkBytes ?? LIMITS.chunkBytes;
    this.signal = options.signal;
    this.onProgress = options.onProgress;
    // gzip runs on the thread pool: keep enough chunks in flight to use every core.
    this.depth = options.compression === 'gzip' ? 3 : 2;
    this.base = offset;
    this.buf = this.takeBuffer();
  }

  /** Copies `bytes` (headers, trailers, piped input) into the stream. */
  async append(bytes: Buffer): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const n = Math.min(this.chunkBytes - this.fill, bytes.length - done);
      bytes.copy(this.buf, this.fill, done, done + n);
      this.fill += n;
      done += n;
      if (this.fill === this.chunkBytes) await this.flush();
    }
  }

  /**
   * Reads `length` bytes of a file from `position` straight into chunk buffers, hashing them.
   * The next read is issued before the previous region is hashed and sent, so disk and CPU overlap.
   */
  async appendFile(fh: FileHandle, position: number, length: number, hash: ContentHash, path: string): Promise<void> {
    let issued = 0;
    type Read = { bytesRead: number; want: number; buf: Buffer; at: number };
    const issue = (): Promise<Read> => {
      const want = Math.min(this.chunkBytes - this.fill, length - issued);
      const buf = this.buf;
      const at = this.fill;
      const read = fh.read(buf, at, want, position + issued).then(({ bytesRead }) => ({ bytesRead, want, buf, at }));
      issued += want;
      this.fill += want; // reserved; corrected below if the read comes back short
      return read;
    };
    let pending: Promise<Read> | null = issue();
    pending.catch(() => undefined);
    while (pending) {
      this.signal.throwIfAborted();
      const { bytesRead, want, buf, at } = await pending;
      // A stopped datadir or snapshot does not change; a short read means it did.
      if (bytesRead !== want) throw changedWhileSending(path);
      const full = buf === this.buf && this.fill === this.chunkBytes ? this.detach() : null;
      pending = issued < length ? issue() : null;
      pending?.catch(() => undefined);
      hash.update(buf.subarray(at, at + bytesRead));
      if (full) await this.submit(full.raw, full.rawBuf, full.offset);
    }
  }

  /**
   * A whole small file read with synchronous calls straight into chunk buffers, hashing it: from
   * the page cache that takes microseconds, where an open, a read and a close through the thread
   * pool wait their turn one after another (~0.5 ms each on a busy 2-core machine), which made the
   * datadir's ~2,000 small tables the slowest part of a seed (docs/performance.md, "Small files").
   */
  async appendSmallFile(abs: string, length: number, hash: ContentHash, path: string): Promise<void> {
    const fd = openSync(abs, 'r');
    try {
      let done = 0;
      while (done < length) {
        this.signal.throwIfAborted();
        const want = Math.min(this.chunkBytes - this.fill, length - done);
        const at = this.fill;
        const bytesRead = readSync(fd, this.buf, at, want, done);
        // A stopped datadir or snapshot does not change; a short read means it did.
        if (bytesRead !== want) throw changedWhileSending(path);
        hash.update(this.buf.subarray(at, at + bytesRead));
        this.fill += bytesRead;
        done += bytesRead;
        if (this.fill === this.chunkBytes) await this.flush();
      }
    } finally {
      closeSync(fd);
    }
  }

  async finish(): Promise<void> {
    if (this.fill > 0) await this.flush();
    await Promise.all(this.inFlight.splice(0));
  }

  /** After a failure: wait for chunks in flight to settle so nothing is sent after we return. */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.inFlight.splice(0));
  }

  private async flush(): Promise<void> {
    const { raw, rawBuf, offset } = this.detach();
    await this.submit(raw, rawBuf, offset);
  }

  /** Takes the current buffer out for sending and starts a fresh one. */
  private detach(): { raw: Buffer; rawBuf: Buffer; offset: number } {
    const detached = { raw: this.buf.subarray(0, this.fill), rawBuf: this.buf, offset: this.base };
    this.base += this.fill;
    this.fill = 0;
    this.buf = this.takeBuffer();
    return detached;
  }

  private async submit(raw: Buffer, rawBuf: Buffer, offset: number): Promise<void> {
    const rawLength = raw.length;
    // zstd compresses into another chunk buffer, which is then sent in place like a raw chunk.
    const into = this.codec.codec === 'zstd' ? this.takeBuffer() : undefined;
    const compressed = this.codec.compress(raw, into).then((payload) => {
      // The raw buffer can be refilled once compressed; uncompressed, once the port sent it.
      if (payload !== raw) this.free.push(rawBuf);
      return payload;
    });
    const previous = this.last;
    const sent = (async () => {
      const payload = await compressed;
      await previous;
      if (this.limiter) await this.limiter.take(rawLength, this.signal);
      await this.port.ready(offset, rawLength, this.signal);
      // Uncompressed, the chunk buffer is the frame (its header room is ours); it is reused once
      // written. So is the buffer zstd compressed into; anything else the port copies.
      if (payload === raw) this.port.send(offset, rawLength, this.codec.codec, payload, { released: () => this.free.push(rawBuf) });
      else if (into && payload.buffer === into.buffer && payload.byteOffset === into.byteOffset) this.port.send(offset, rawLength, this.codec.codec, payload, { released: () => this.free.push(into) });
      else {
        this.port.send(offset, rawLength, this.codec.codec, payload);
        if (into) this.free.push(into);
      }
      this.onProgress?.(offset + rawLength);
    })();
    sent.catch(() => undefined); // awaited below or in finish/abandon; never unhandled
    this.last = sent;
    this.inFlight.push(sent);
    while (this.inFlight.length >= this.depth) await this.inFlight.shift();
  }

  /**
   * A chunk buffer with a frame header's room before it, so the port can send it in place, and
   * room after a chunk for zstd's worst case (compressBound: a chunk that does not compress grows
   * by about 1/256). Pages past what is written are never touched, so they cost no memory.
   */
  private takeBuffer(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(DATA_HEADER_BYTES + this.chunkBytes + compressRoomBytes(this.chunkBytes)).subarray(DATA_HEADER_BYTES);
  }
}
