/**
 * Per-chunk compression. Every data frame is compressed on its own, so a frame's stream offset
 * and raw length stay those of the uncompressed seed stream (resume works on raw offsets) and a
 * receiver never needs state from an earlier frame.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { CCtx, DCtx } from 'zstd-napi/binding.js';
import type { Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import type { BufferHold, ReceiveBufferPool } from '../streams/receive-buffers.js';
import { loadZstd } from './zstd.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface ChunkCodec {
  readonly codec: Codec;
  /**
   * Returns a new buffer for gzip/zstd; for 'none' returns `raw` itself. With `into`, zstd
   * compresses there when the worst case fits (`compressBound`) and returns a view of its start.
   */
  compress(raw: Buffer, into?: Buffer): Promise<Buffer>;
  /**
   * Checks that the result is exactly `rawLength` bytes (and never inflates past it). With `into`
   * (at least `rawLength` bytes), zstd decompresses there and returns a view of it.
   */
  decompress(payload: Buffer, rawLength: number, into?: Buffer): Promise<Buffer>;
}

export interface ChunkCodecOptions {
  /** gzip 1-9 (default 1); zstd 1-19 (default 1). Fast levels keep up with the link. */
  level?: number;
}

export function createChunkCodec(codec: Codec, options: ChunkCodecOptions = {}): ChunkCodec {
  switch (codec) {
    case 'none':
      return {
        codec,
        compress: async (raw) => raw,
        decompress: async (payload, rawLength) => checkLength(codec, payload, rawLength),
      };
    case 'gzip': {
      const level = options.level ?? 1;
      return {
        codec,
        // zlib's async API runs on the thread pool, so several chunks compress in parallel.
        compress: (raw) => gzipAsync(raw, { level }),
        decompress: async (payload, rawLength) => {
          try {
            return checkLength(codec, await gunzipAsync(payload, { maxOutputLength: Math.max(1, rawLength) }), rawLength);
          } catch (error) {
            throw asCorrupt(codec, error);
          }
        },
      };
    }
    case 'zstd': {
      // zstd at levels 1-3 compresses a MiB in about a millisecond: synchronous is fine.
      const level = options.level ?? 1;
      let pair: Promise<{ cctx: CCtx; dctx: DCtx; compressBound: (size: number) => number }> | undefined;
      const zstd = (): NonNullable<typeof pair> =>
        (pair ??= loadZstd().then((zstdNapi) => ({ cctx: new zstdNapi.CCtx(), dctx: new zstdNapi.DCtx(), compressBound: zstdNapi.compressBound })));
      return {
        codec,
        compress: async (raw, into) => {
          const { cctx, compressBound } = await zstd();
          const bound = compressBound(raw.length);
          const out = into && into.length >= bound ? into : Buffer.allocUnsafe(bound);
          return out.subarray(0, cctx.compress(out, raw, level));
        },
        decompress: async (payload, rawLength, into) => {
          const { dctx } = await zstd();
          // Into exactly the frame's raw length: a frame whose content would be larger fails
          // ("Destination buffer is too small") instead of being given the memory its header asks for.
          const out = into ? into.subarray(0, rawLength) : Buffer.allocUnsafe(rawLength);
          let written: number;
          try {
            written = dctx.decompress(out, payload);
          } catch (error) {
            throw asCorrupt(codec, error);
          }
          return checkLength(codec, out.subarray(0, written), rawLength);
        },
      };
    }
  }
}

/** The largest raw length a received frame may claim: a sender's chunk compressed at most 4:1 into one message. */
const MAX_RAW_CHUNK_BYTES = LIMITS.maxMessageBytes * 4;

/** A chunk's raw bytes, and the hold of the pooled buffer they lie in, if any (receive-buffers.ts). */
export interface InflatedChunk {
  raw: Buffer;
  /**
   * Uncompressed: the chunk's own hold (the raw bytes are its payload). Decompressed into a
   * pooled buffer: that buffer's, with one reference, the caller's to release. Else undefined.
   */
  hold: BufferHold | undefined;
}

/**
 * A receiver's decompression of data frames: one codec instance per codec seen. Given a pool, a
 * zstd chunk is decompressed into one of its buffers (a fresh buffer per chunk would be promoted
 * and wait for a full collection, as received messages did: docs/performance.md).
 */
export class ChunkInflater {
  private readonly codecs = new Map<Codec, ChunkCodec>();

  constructor(private readonly pool?: ReceiveBufferPool) {}

  /** The frame's raw bytes; refuses a frame claiming more raw bytes than a sender ever puts in one. */
  async inflate(chunk: { rawLength: number; codec: Codec; payload: Buffer; hold?: BufferHold | undefined }): Promise<InflatedChunk> {
    if (chunk.rawLength > MAX_RAW_CHUNK_BYTES) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame of ${chunk.rawLength} raw bytes`);
    let codec = this.codecs.get(chunk.codec);
    if (!codec) {
      codec = createChunkCodec(chunk.codec);
      this.codecs.set(chunk.codec, codec);
    }
    const pooled = chunk.codec === 'zstd' && this.pool && chunk.rawLength <= this.pool.bufferBytes ? this.pool.take() : undefined;
    try {
      const raw = await codec.decompress(chunk.payload, chunk.rawLength, pooled?.buffer);
      return { raw, hold: chunk.codec === 'none' ? chunk.hold : pooled?.hold };
    } catch (error) {
      pooled?.hold.release(); // nothing but the decompressor saw it
      throw error;
    }
  }
}

function checkLength(codec: Codec, out: Buffer, rawLength: number): Buffer {
  if (out.length !== rawLength) {
    throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `${codec} chunk holds ${out.length} bytes but its frame says ${rawLength}`);
  }
  return out;
}

function asCorrupt(codec: Codec, error: unknown): SeedwireError {
  if (error instanceof SeedwireError) return error;
  return new SeedwireError('SEEDWIRE_VERIFY_FAILED', `${codec} chunk does not decompress: ${(error as Error).message}`, { cause: error });
}
