/**
 * Pooled receive buffers (agent/streams/receive-buffers.ts) and the tree writer's use of their
 * holds: a buffer goes back to the pool only once nothing reads it, the write of its bytes
 * included, never before; a release too many is refused.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReceiveBufferPool } from '../../agent/streams/receive-buffers.js';
import { TreeWriter } from '../../agent/transfer/tree-writer.js';

const MiB = 1024 * 1024;

describe('receive buffer pool', () => {
  it('gives a buffer back at the last release, and reuses it for the next take', () => {
    const pool = new ReceiveBufferPool(1024, 4);
    pool.open();
    const first = pool.take();
    first.hold.retain(); // a write in flight
    first.hold.release(); // the consumer is done
    expect(pool.freeCount).toBe(0);
    first.hold.release(); // the write settled
    expect(pool.freeCount).toBe(1);
    expect(pool.take().buffer).toBe(first.buffer);
  });

  it('refuses a release too many and a retain after the last release', () => {
    const pool = new ReceiveBufferPool(1024, 4);
    pool.open();
    const { hold } = pool.take();
    hold.release();
    expect(() => hold.release()).toThrow(/released more often than it was retained/);
    expect(() => hold.retain()).toThrow(/retained after its last release/);
    expect(pool.freeCount).toBe(1);
  });

  it('keeps at most `keep` free buffers, and none once its last connection closed', () => {
    const pool = new ReceiveBufferPool(1024, 2);
    pool.open();
    const taken = [pool.take(), pool.take(), pool.take()];
    for (const { hold } of taken) hold.release();
    expect(pool.freeCount).toBe(2);
    pool.close();
    expect(pool.freeCount).toBe(0);
    // With no connection open, a buffer given back is left to the collector.
    const late = pool.take();
    late.hold.release();
    expect(pool.freeCount).toBe(0);
  });
});

describe('tree writer with pooled buffers', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'seedwire-receive-buffers-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('holds a pooled buffer while its write is in flight and gives it back once written; the file has the bytes', async () => {
    const pool = new ReceiveBufferPool(MiB, 8);
    pool.open();
    const writer = new TreeWriter(root);
    const size = 3 * MiB;
    await writer.writeEntry({ type: 'file', path: 'big.ibd', mode: 0o640, mtimeMs: 0, size }, 0);
    const hash = createHash('sha256');
    const expected: Buffer[] = [];
    for (let i = 0; i < 3; i += 1) {
      const { buffer, hold } = pool.take();
      buffer.fill(0x41 + i);
      expected.push(Buffer.from(buffer));
      hash.update(buffer);
      await writer.writeData(buffer, hold); // a whole batch: its write starts now
      hold.release(); // the receiver's own reference, as receive.ts drops it after each chunk
      // The write is still in flight (a thread-pool round trip cannot settle synchronously).
      expect(pool.freeCount).toBe(0);
    }
    await writer.completeFile(hash.digest());
    expect(pool.freeCount).toBe(3);
    await writer.flush();
    await writer.close();
    expect((await readFile(join(root, 'big.ibd'))).equals(Buffer.concat(expected))).toBe(true);
  });

  it('never gives back a buffer whose bytes were gathered but not written (a receive that failed)', async () => {
    const pool = new ReceiveBufferPool(64 * 1024, 8);
    pool.open();
    const writer = new TreeWriter(root);
    await writer.writeEntry({ type: 'file', path: 'cut.ibd', mode: 0o640, mtimeMs: 0, size: 4 * MiB }, 0);
    const { buffer, hold } = pool.take();
    await writer.writeData(buffer, hold); // below a batch: gathered, not yet written
    hold.release();
    await writer.close();
    expect(pool.freeCount).toBe(0);
  });
});
