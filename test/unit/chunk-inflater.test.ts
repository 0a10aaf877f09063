/**
 * The receivers' decompression of data frames (agent/transfer/compress.ts, ChunkInflater) with
 * the real zstd addon: a zstd chunk lands in a pooled buffer, and a frame is never given more
 * memory than its data header's raw length, whatever its own zstd header declares (a
 * decompression bomb from a rogue source is refused, not allocated).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ReceiveBufferPool } from '../../agent/streams/receive-buffers.js';
import { ChunkInflater, createChunkCodec } from '../../agent/transfer/compress.js';
import { SeedwireError } from '../../shared/errors.js';
import { rejectionOf } from '../helpers/checks.js';

const MiB = 1024 * 1024;

describe('chunk inflater', () => {
  it('decompresses a zstd chunk into a pooled buffer and hands its hold over; uncompressed, the chunk is its own raw bytes', async () => {
    const pool = new ReceiveBufferPool(MiB + 64 * 1024, 4);
    pool.open();
    const raw = Buffer.alloc(MiB);
    for (let i = 0; i < raw.length; i += 1) raw[i] = (i * 7) & 0xff;
    const payload = await createChunkCodec('zstd').compress(raw);
    const inflater = new ChunkInflater(pool);
    const out = await inflater.inflate({ codec: 'zstd', rawLength: raw.length, payload });
    expect(out.raw.equals(raw)).toBe(true);
    expect(out.hold).toBeDefined();
    out.hold!.release();
    expect(pool.freeCount).toBe(1);

    const plain = await inflater.inflate({ codec: 'none', rawLength: 3, payload: Buffer.from('abc') });
    expect(plain.raw.toString()).toBe('abc');
    expect(plain.hold).toBeUndefined();
  });

  it('refuses a zstd frame that inflates past its raw length without allocating what it declares, and gives the pooled buffer back', async () => {
    const pool = new ReceiveBufferPool(MiB + 64 * 1024, 4);
    pool.open();
    // 256 MiB of zeros compress to a few KiB; the data header claims 1 MiB.
    const bomb = await createChunkCodec('zstd').compress(Buffer.alloc(256 * MiB));
    expect(bomb.length).toBeLessThan(MiB);
    const before = process.memoryUsage().arrayBuffers;
    for (const inflater of [new ChunkInflater(pool), new ChunkInflater()]) {
      const error = await rejectionOf(inflater.inflate({ codec: 'zstd', rawLength: MiB, payload: bomb }));
      expect(error).toBeInstanceOf(SeedwireError);
      expect((error as SeedwireError).code).toBe('SEEDWIRE_VERIFY_FAILED');
      expect((error as SeedwireError).message).toMatch(/zstd chunk does not decompress/);
    }
    // Trusting the frame's own header would have allocated (and filled) 256 MiB here.
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * MiB);
    expect(pool.freeCount).toBe(1);
  });

  it('loads the compression and decompression contexts in the built agent too (plain node, where CommonJS exports sit on `default`)', () => {
    // dist/ is what `make test` builds first and what installed agents run.
    const script = "import('./dist/agent/transfer/zstd.js').then((m) => m.loadZstd()).then((z) => process.stdout.write(typeof z.CCtx + ' ' + typeof z.DCtx + ' ' + typeof z.compressBound))";
    expect(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })).toBe('function function function');
  });

  it('refuses a zstd frame that holds fewer bytes than its data header says', async () => {
    const payload = await createChunkCodec('zstd').compress(Buffer.alloc(1000, 1));
    const error = await rejectionOf(new ChunkInflater().inflate({ codec: 'zstd', rawLength: 2000, payload }));
    expect((error as SeedwireError).message).toMatch(/zstd chunk holds 1000 bytes but its frame says 2000/);
  });
});
