/**
 * A running seed's live progress, kept in memory between the transfer's progress reports and the
 * API: committed bytes, the receiver's offset, the rate. Published at most every `publishMs`
 * (forced once a second by the transfer's ticker) and persisted at most every `persistMs`.
 */
import { SEED_LIMITS } from './limits.js';
import { estimateEta, RateMeter } from './progress.js';
import type { SeedStore } from './store.js';
import type { SeedView } from './types.js';

interface LiveState {
  rate: RateMeter;
  /** Committed by the receiver (durable: a resume starts here). */
  bytesDone: number;
  /** The receiver's offset (ahead of bytesDone, which moves in commit steps): what the throughput chart samples. */
  received: number | null;
  lastPublishAt: number;
  lastPersistAt: number;
}

export class LiveProgress {
  private readonly live = new Map<string, LiveState>();

  constructor(
    private readonly store: Pick<SeedStore, 'setProgress'>,
    private readonly publish: (id: string) => void,
    /** A progress write that failed: the next one carries the number again. */
    private readonly onPersistError: (id: string, error: unknown) => void,
  ) {}

  /** A run starts (or resumes) with what the store says is committed. */
  begin(id: string, bytesDone: number): void {
    if (!this.live.has(id)) this.live.set(id, { rate: new RateMeter(), bytesDone, received: null, lastPublishAt: 0, lastPersistAt: 0 });
  }

  /** Bytes done for the throughput chart: the receiver's offset when known, else what is committed. */
  chartBytes(id: string, fallback: number): number {
    const live = this.live.get(id);
    return live ? Math.max(live.bytesDone, live.received ?? 0) : fallback;
  }

  bytesDone(id: string): number {
    return this.of(id).bytesDone;
  }

  /** A new attempt: a stream that starts over counts from 0; the rate does not count the pause. */
  startAttempt(id: string, fromZero: boolean): void {
    const live = this.of(id);
    if (fromZero) live.bytesDone = 0;
    live.rate.reset(live.bytesDone);
    live.received = null;
  }

  committed(id: string, offset: number): void {
    const live = this.of(id);
    live.bytesDone = offset;
    live.rate.sample(offset);
    this.publishThrottled(id, false);
  }

  received(id: string, offset: number): void {
    this.of(id).received = offset;
  }

  /** The transfer finished: what the target received is done. */
  finished(id: string, bytes: number): void {
    this.of(id).bytesDone = bytes;
  }

  /** Publishes now (the transfer's once-a-second ticker), persisting if due. */
  tick(id: string): void {
    this.publishThrottled(id, true);
  }

  forget(id: string): void {
    this.live.delete(id);
  }

  /** The stored view with the live numbers of a running seed. */
  withLive(seed: SeedView): SeedView {
    const live = this.live.get(seed.id);
    if (!live || seed.state !== 'running') return seed;
    const bytesDone = Math.max(seed.bytesDone, live.bytesDone);
    const bytesPerSec = live.rate.value === null ? null : Math.round(live.rate.value);
    return { ...seed, bytesDone, bytesPerSec, etaSeconds: estimateEta(seed.bytesTotal, bytesDone, bytesPerSec) };
  }

  private of(id: string): LiveState {
    let live = this.live.get(id);
    if (!live) {
      live = { rate: new RateMeter(), bytesDone: 0, received: null, lastPublishAt: 0, lastPersistAt: 0 };
      this.live.set(id, live);
    }
    return live;
  }

  private publishThrottled(id: string, force: boolean): void {
    const live = this.of(id);
    const t = performance.now();
    if (t - live.lastPersistAt >= SEED_LIMITS.persistMs) {
      live.lastPersistAt = t;
      this.store.setProgress(id, live.bytesDone).catch((error: unknown) => this.onPersistError(id, error));
    }
    if (force || t - live.lastPublishAt >= SEED_LIMITS.publishMs) {
      live.lastPublishAt = t;
      this.publish(id);
    }
  }
}
