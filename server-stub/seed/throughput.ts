/**
 * A seed's throughput over time, kept by the controller so a page opened mid-seed (or after it)
 * can draw the whole history: one sample per interval (1 s to start with) of bytes done and the
 * rate over that interval, plus marks for stage changes, transfer attempts and controller
 * restarts. Bounded: past `maxPoints` samples, neighbours are merged pairwise and the interval
 * doubles, so a seed of any length keeps at most `maxPoints` evenly spaced points.
 */
import type { SeedState, StageName } from './types.js';

export interface ThroughputSample {
  /** Unix ms at the end of the interval. */
  t: number;
  bytesDone: number;
  /** Bytes per second over the interval ending at `t` (0 while nothing moves). */
  bytesPerSec: number;
  stage: StageName | null;
  /** Transfer attempt in progress (0 before the transfer starts). */
  attempt: number;
}

export interface ThroughputMark {
  t: number;
  /** `stage`: a stage started; `attempt`: a transfer attempt started (2+ are resumes); `restart`: the controller picked the seed up after a restart. */
  kind: 'stage' | 'attempt' | 'restart';
  label: string;
  stage?: StageName;
  attempt?: number;
}

export interface ThroughputData {
  intervalMs: number;
  samples: ThroughputSample[];
  marks: ThroughputMark[];
}

/** GET /api/seeds/:id/throughput */
export interface ThroughputView extends ThroughputData {
  seedId: string;
  state: SeedState;
  createdAt: string;
  endedAt: string | null;
  bytesTotal: number | null;
}

export const THROUGHPUT_DEFAULTS = {
  /** @default 1000 ms between samples until the series is downsampled */
  intervalMs: 1000,
  /** @default 720 samples (12 min at full resolution) */
  maxPoints: 720,
  /** @default 200 marks (stages are 7; the rest are attempts and restarts) */
  maxMarks: 200,
} as const;

export class ThroughputSeries {
  private intervalMs: number;
  private samples: ThroughputSample[];
  private marks: ThroughputMark[];

  constructor(
    data: ThroughputData | null = null,
    private readonly limits: { maxPoints: number; maxMarks: number } = THROUGHPUT_DEFAULTS,
  ) {
    this.intervalMs = data?.intervalMs ?? THROUGHPUT_DEFAULTS.intervalMs;
    this.samples = data ? [...data.samples] : [];
    this.marks = data ? [...data.marks] : [];
  }

  /**
   * Records the bytes done at `t` if an interval has passed since the last sample (or `force`).
   * Returns whether a sample was added.
   */
  record(t: number, bytesDone: number, stage: StageName | null, attempt: number, force = false): boolean {
    const last = this.samples.at(-1);
    if (last && !force && t - last.t < this.intervalMs) return false;
    if (last && t <= last.t) return false;
    // A streamed (backup) attempt starts again from 0: that is a restart, not negative throughput.
    const bytesPerSec = last ? Math.round((Math.max(0, bytesDone - last.bytesDone) * 1000) / (t - last.t)) : 0;
    this.samples.push({ t, bytesDone, bytesPerSec, stage, attempt });
    if (this.samples.length > this.limits.maxPoints) this.halve();
    return true;
  }

  mark(mark: ThroughputMark): void {
    this.marks.push(mark);
    if (this.marks.length > this.limits.maxMarks) {
      // Stage marks are few and say the most: drop the oldest other mark first.
      const index = this.marks.findIndex((m) => m.kind !== 'stage');
      this.marks.splice(index >= 0 ? index : 0, 1);
    }
  }

  toJSON(): ThroughputData {
    return { intervalMs: this.intervalMs, samples: this.samples, marks: this.marks };
  }

  /** Merges neighbours pairwise (the newer one's position, the mean of their rates). */
  private halve(): void {
    const merged: ThroughputSample[] = [];
    // An odd first sample is kept as it is, so the newest pair always merges.
    let i = this.samples.length % 2;
    if (i === 1) merged.push(this.samples[0]!);
    for (; i + 1 < this.samples.length; i += 2) {
      const a = this.samples[i]!;
      const b = this.samples[i + 1]!;
      merged.push({ ...b, bytesPerSec: Math.round((a.bytesPerSec + b.bytesPerSec) / 2) });
    }
    this.samples = merged;
    this.intervalMs *= 2;
  }
}
