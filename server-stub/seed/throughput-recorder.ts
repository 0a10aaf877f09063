/**
 * Samples every running seed's progress once a second into its ThroughputSeries and persists the
 * series in SQLite (table `seed_throughput`, one JSON row per seed, written every few seconds and
 * at every mark), so the history survives a controller restart and outlives the run. The table
 * comes from the store's migrations (server-stub/store/migrations.ts).
 */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
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
  private readonly sampleMs: number;
  private readonly persistMs: number;

  constructor(
    private readonly db: Database.Database,
    private readonly log: Logger,
    options: RecorderOptions = {},
  ) {
    this.sampleMs = options.sampleMs ?? 1000;
    this.persistMs = options.persistMs ?? 5000;
  }

  /** Starts sampling a seed (its series continues from what was persisted). Idempotent. */
  track(seedId: string, state: { stage: StageName | null; attempt: number }, bytesDone: () => number): void {
    if (this.tracked.has(seedId)) return;
    const timer = setInterval(() => this.sample(seedId, false), this.sampleMs);
    timer.unref();
    const entry: Tracked = { series: new ThroughputSeries(this.load(seedId)), stage: state.stage, attempt: state.attempt, bytesDone, timer, persistedAt: Date.now() };
    this.tracked.set(seedId, entry);
    this.sample(seedId, true);
  }

  /** A last sample, persisted; sampling stops. */
  untrack(seedId: string): void {
    const entry = this.tracked.get(seedId);
    if (!entry) return;
    clearInterval(entry.timer);
    this.sample(seedId, true);
    this.persist(seedId, entry);
    this.tracked.delete(seedId);
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
  view(seedId: string): ThroughputData | null {
    return this.tracked.get(seedId)?.series.toJSON() ?? this.load(seedId);
  }

  close(): void {
    for (const seedId of [...this.tracked.keys()]) this.untrack(seedId);
  }

  private sample(seedId: string, force: boolean): void {
    const entry = this.tracked.get(seedId);
    if (!entry) return;
    entry.series.record(Date.now(), entry.bytesDone(), entry.stage, entry.attempt, force);
    if (Date.now() - entry.persistedAt >= this.persistMs) this.persist(seedId, entry);
  }

  private mark(seedId: string, entry: Tracked, mark: ThroughputMark): void {
    entry.series.mark(mark);
    this.persist(seedId, entry);
  }

  private persist(seedId: string, entry: Tracked): void {
    entry.persistedAt = Date.now();
    try {
      this.db.prepare(`INSERT INTO seed_throughput (seed_id, series) VALUES (?, ?) ON CONFLICT (seed_id) DO UPDATE SET series = excluded.series`).run(seedId, JSON.stringify(entry.series));
    } catch (error) {
      // The chart is a convenience: losing a write must not disturb the seed.
      this.log.warn({ err: error, seedId }, 'could not persist the throughput series');
    }
  }

  private load(seedId: string): ThroughputData | null {
    const row = this.db.prepare(`SELECT series FROM seed_throughput WHERE seed_id = ?`).get(seedId) as { series: string } | undefined;
    if (!row) return null;
    try {
      return JSON.parse(row.series) as ThroughputData;
    } catch {
      return null;
    }
  }
}
