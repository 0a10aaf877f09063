/**
 * Samples every running seed's progress once a second into its ThroughputSeries and persists the
 * series in the store (table `seed_throughput`, one JSON row per seed, written every few seconds
 * and at every mark), so the history survives a controller restart and outlives the run. The
 * table comes from the store's migrations.
 */
import type { Logger } from 'pino';
import type { ThroughputStore } from '../store/throughput.js';
import { ThroughputSeries, type ThroughputData, type ThroughputMark } from './throughput.js';
import type { StageName } from './types.js';

export interface RecorderOptions {
  /** @default 1000 ms between samples */
  sampleMs?: number;
  /** @default 5000 ms between writes of a running seed's series */
  persistMs?: number;
}

interface Tracked {
  series: ThroughputSeries;
  stage: StageName | null;
  attempt: number;
  bytesDone: () => number;
  timer: NodeJS.Timeout;
  persistedAt: number;
}

export class ThroughputRecorder {
  private readonly tracked = new Map<string, Tracked>();
  /** The last write queued: writes land in order, and close() waits so none outlives the store. */
  private lastWrite: Promise<void> = Promise.resolve();
  private readonly sampleMs: number;
  private readonly persistMs: number;

  constructor(
    private readonly store: ThroughputStore,
    private readonly log: Logger,
    options: RecorderOptions = {},
  ) {
    this.sampleMs = options.sampleMs ?? 1000;
    this.persistMs = options.persistMs ?? 5000;
  }

  /** Starts sampling a seed (its series continues from what was persisted). Idempotent. */
  async track(seedId: string, state: { stage: StageName | null; attempt: number }, bytesDone: () => number): Promise<void> {
    if (this.tracked.has(seedId)) return;
    const stored = await this.load(seedId);
    if (this.tracked.has(seedId)) return;
    const timer = setInterval(() => this.sample(seedId, false), this.sampleMs);
    timer.unref();
    const entry: Tracked = { series: new ThroughputSeries(stored), stage: state.stage, attempt: state.attempt, bytesDone, timer, persistedAt: Date.now() };
    this.tracked.set(seedId, entry);
    this.sample(seedId, true);
  }

  /** A last sample, persisted; sampling stops. */
  async untrack(seedId: string): Promise<void> {
    const entry = this.tracked.get(seedId);
    if (!entry) return;
    clearInterval(entry.timer);
    this.sample(seedId, true);
    this.tracked.delete(seedId);
    await this.persist(seedId, entry);
  }

  markStage(seedId: string, stage: StageName): void {
    const entry = this.tracked.get(seedId);
    if (!entry) return;
    this.sample(seedId, true); // close the previous stage's interval at its real end
    entry.stage = stage;
    this.mark(seedId, entry, { t: Date.now(), kind: 'stage', label: stage, stage });
  }

  markAttempt(seedId: string, attempt: number, resumed: boolean): void {
    const entry = this.tracked.get(seedId);
    if (!entry) return;
    this.sample(seedId, true);
    entry.attempt = attempt;
    if (attempt > 1 || resumed) this.mark(seedId, entry, { t: Date.now(), kind: 'attempt', label: `attempt ${attempt}${resumed ? ' (resumed)' : ' (from the start)'}`, attempt });
  }

  markRestart(seedId: string): void {
    const entry = this.tracked.get(seedId);
    if (entry) this.mark(seedId, entry, { t: Date.now(), kind: 'restart', label: 'controller restarted; seed resumed' });
  }

  /** The series as stored or as it runs; null when the seed has none. */
  async view(seedId: string): Promise<ThroughputData | null> {
    return this.tracked.get(seedId)?.series.toJSON() ?? this.load(seedId);
  }

  async close(): Promise<void> {
    await Promise.all([...this.tracked.keys()].map((seedId) => this.untrack(seedId)));
    await this.lastWrite;
  }

  private sample(seedId: string, force: boolean): void {
    const entry = this.tracked.get(seedId);
    if (!entry) return;
    entry.series.record(Date.now(), entry.bytesDone(), entry.stage, entry.attempt, force);
    if (Date.now() - entry.persistedAt >= this.persistMs) void this.persist(seedId, entry);
  }

  private mark(seedId: string, entry: Tracked, mark: ThroughputMark): void {
    entry.series.mark(mark);
    void this.persist(seedId, entry);
  }

  /** Never rejects: the chart is a convenience, and losing a write must not disturb the seed. */
  private persist(seedId: string, entry: Tracked): Promise<void> {
    entry.persistedAt = Date.now();
    const series = JSON.stringify(entry.series);
    this.lastWrite = this.lastWrite
      .then(() => this.store.save(seedId, series))
      .catch((error: unknown) => this.log.warn({ err: error, seedId }, 'could not persist the throughput series'));
    return this.lastWrite;
  }

  private async load(seedId: string): Promise<ThroughputData | null> {
    const text = await this.store.load(seedId);
    if (text === null) return null;
    try {
      return JSON.parse(text) as ThroughputData;
    } catch {
      return null;
    }
  }
}
