/**
 * Per-chunk compression. Every data frame is compressed on its own, so a frame's stream offset
 * and raw length stay those of the uncompressed seed stream (resume works on raw offsets) and a
 * receiver never needs state from an earlier frame.
 */
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { Compressor, Decompressor } from 'zstd-napi';
import type { Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import { loadZstd } from './zstd.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface ChunkCodec {
  readonly codec: Codec;
  /** Returns a new buffer for gzip/zstd; for 'none' returns `raw` itself. */
  compress(raw: Buffer): Promise<Buffer>;
  /** Checks that the result is exactly `rawLength` bytes (and never inflates past it). */
  decompress(payload: Buffer, rawLength: number): Promise<Buffer>;
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
      let pair: Promise<{ compressor: Compressor; decompressor: Decompressor }> | undefined;
      const zstd = (): NonNullable<typeof pair> =>
        (pair ??= loadZstd().then((zstdNapi) => {
          const compressor = new zstdNapi.Compressor();
          compressor.setParameters({ compressionLevel: options.level ?? 1 });
          return { compressor, decompressor: new zstdNapi.Decompressor() };
        }));
      return {
        codec,
        compress: async (raw) => (await zstd()).compressor.compress(raw),
        decompress: async (payload, rawLength) => {
          const { decompressor } = await zstd();
          let out: Buffer;
          try {
            out = decompressor.decompress(payload);
          } catch (error) {
            throw asCorrupt(codec, error);
          }
          return checkLength(codec, out, rawLength);
        },
      };
    }
  }
}

/** The largest raw length a received frame may claim: a sender's chunk compressed at most 4:1 into one message. */
const MAX_RAW_CHUNK_BYTES = LIMITS.maxMessageBytes * 4;

/** A receiver's decompression of data frames: one codec instance per codec seen. */
export class ChunkInflater {
  private readonly codecs = new Map<Codec, ChunkCodec>();

  /** The frame's raw bytes; refuses a frame claiming more raw bytes than a sender ever puts in one. */
  async inflate(chunk: { rawLength: number; codec: Codec; payload: Buffer }): Promise<Buffer> {
    if (chunk.rawLength > MAX_RAW_CHUNK_BYTES) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame of ${chunk.rawLength} raw bytes`);
    let codec = this.codecs.get(chunk.codec);
    if (!codec) {
      codec = createChunkCodec(chunk.codec);
      this.codecs.set(chunk.codec, codec);
    }
    return codec.decompress(chunk.payload, chunk.rawLength);
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
