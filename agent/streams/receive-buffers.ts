/**
 * Reused buffers for received data messages (agent/streams/data-reader.ts reads each message
 * straight into one). A fresh buffer per message is what made a receiving agent's memory peak
 * (docs/performance.md, "Where memory and event-loop time go during a seed"): each one is held
 * in the receive queue and the pending file writes long enough to be promoted, and only a full
 * collection freed it. A pooled buffer is given back as soon as nothing uses it any more, and
 * the next message is read into it.
 *
 * Who uses a buffer says so through its hold, a reference count: the reader hands a message on
 * with one reference; whoever keeps the bytes past that (a file write in flight) retains; each
 * releases when done. The buffer returns to the pool when the count reaches zero, never before.
 * A hold that is never released only costs the pool that buffer (it is garbage collected like
 * any other), so a consumer that does not know about holds stays correct; a release too many is
 * a bug that could hand bytes still being written to the next message, so it throws.
 */
import { DATA_HEADER_BYTES } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';

/** A pooled buffer's reference count; see the module comment. */
export interface BufferHold {
  retain(): void;
  release(): void;
}

class PooledHold implements BufferHold {
  private refs = 1;

  constructor(
    readonly buffer: Buffer,
    private readonly pool: ReceiveBufferPool,
  ) {}

  retain(): void {
    if (this.refs <= 0) throw new SeedwireError('SEEDWIRE_INTERNAL', 'a receive buffer was retained after its last release');
    this.refs += 1;
  }

  release(): void {
    if (this.refs <= 0) throw new SeedwireError('SEEDWIRE_INTERNAL', 'a receive buffer was released more often than it was retained');
    this.refs -= 1;
    if (this.refs === 0) this.pool.give(this.buffer);
  }
}

export interface PooledBuffer {
  buffer: Buffer;
  /** Holds one reference, the taker's. */
  hold: BufferHold;
}

export class ReceiveBufferPool {
  private free: Buffer[] = [];
  private users = 0;

  /**
   * @param bufferBytes size of every buffer
   * @param keep most free buffers kept between messages (more are left to the collector)
   */
  constructor(
    readonly bufferBytes: number,
    private readonly keep: number,
  ) {}

  /** Free buffers kept now (for tests and the bench's probe). */
  get freeCount(): number {
    return this.free.length;
  }

  take(): PooledBuffer {
    const buffer = this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferBytes);
    return { buffer, hold: new PooledHold(buffer, this) };
  }

  /** A data connection starts using the pool. */
  open(): void {
    this.users += 1;
  }

  /** A data connection is done with the pool; the last one lets the free buffers go, so an idle agent keeps none. */
  close(): void {
    this.users = Math.max(0, this.users - 1);
    if (this.users === 0) this.free = [];
  }

  give(buffer: Buffer): void {
    if (buffer.length !== this.bufferBytes) return;
    if (this.users > 0 && this.free.length < this.keep) this.free.push(buffer);
  }
}

/**
 * The agent's pool: one data message each (a full chunk, its header and room for a compressed
 * chunk that grew), as many kept free as a seed's window and its writes in flight need. The data
 * reader reads messages into it; the tree receiver decompresses zstd chunks into it.
 */
export const RECEIVE_POOL = new ReceiveBufferPool(DATA_HEADER_BYTES + LIMITS.chunkBytes + 64 * 1024, Math.ceil(LIMITS.windowMaxBytes / LIMITS.chunkBytes) + 8);
