/**
 * Pure helpers of `make bench`: figures with their targets and verdicts, ratios, aggregate
 * rates, latency statistics and size parsing. No I/O here, so test/unit/bench-targets.test.ts
 * checks them on literal numbers.
 */

export type Comparison = '>=' | '<=';

/** What a figure must reach: `value op target` passes (issue 13's Targets table). */
export interface Target {
  op: Comparison;
  value: number;
  /** A better value worth naming (printed beside the target, not judged). */
  stretch?: number;
}

export type Verdict = 'pass' | 'fail' | 'n/a';

/** One measured figure beside its target, as printed and as written to latest.json `targets`. */
export interface Figure {
  /** Stable key, the figure's path in latest.json (e.g. `seed.ratio`). */
  key: string;
  /** The section that measured it (bench/sections.ts). */
  section: string;
  what: string;
  value: number | null;
  unit: string;
  target: Target | null;
  verdict: Verdict;
  note: string | null;
}

export type FigureInput = Omit<Figure, 'verdict' | 'note' | 'target'> & { target?: Target | null; note?: string | null };

export function atLeast(value: number, stretch?: number): Target {
  return stretch === undefined ? { op: '>=', value } : { op: '>=', value, stretch };
}

export function atMost(value: number): Target {
  return { op: '<=', value };
}

/** pass/fail against the target; n/a when nothing was measured or there is no target. */
export function judge(value: number | null, target: Target | null): Verdict {
  if (value === null || !Number.isFinite(value) || target === null) return 'n/a';
  return (target.op === '>=' ? value >= target.value : value <= target.value) ? 'pass' : 'fail';
}

export function makeFigure(input: FigureInput): Figure {
  const target = input.target ?? null;
  return { ...input, target, note: input.note ?? null, verdict: judge(input.value, target) };
}

export function formatTarget(target: Target | null, unit = ''): string {
  if (target === null) return '—';
  const sign = target.op === '>=' ? '≥' : '≤';
  const stretch = target.stretch === undefined ? '' : ` (stretch ${sign} ${target.stretch}${unit})`;
  return `${sign} ${target.value}${unit}${stretch}`;
}

export function round(n: number | null, digits = 1): number | null {
  return n === null || !Number.isFinite(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits;
}

/** a / b rounded, or null when either is missing or b is not positive. */
export function ratio(a: number | null, b: number | null, digits = 2): number | null {
  if (a === null || b === null || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return null;
  return round(a / b, digits);
}

export interface Interval {
  /** Milliseconds on any one clock. */
  startMs: number;
  endMs: number;
}

/**
 * Bytes per second of transfers that ran at the same time, as one aggregate: all their bytes
 * over the span from the first start to the last end (so a straggler counts against it). Null
 * when any transfer is missing.
 */
export function aggregateRate(transfers: ReadonlyArray<{ bytes: number; interval: Interval | null }>): number | null {
  if (transfers.length === 0 || transfers.some((t) => t.interval === null)) return null;
  const intervals = transfers.map((t) => t.interval!);
  const span = (Math.max(...intervals.map((i) => i.endMs)) - Math.min(...intervals.map((i) => i.startMs))) / 1000;
  if (!(span > 0)) return null;
  return transfers.reduce((sum, t) => sum + t.bytes, 0) / span;
}

export interface LatencyStats {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** p50 of the first and of the last tenth of the samples: does latency drift as calls accumulate? */
  firstTenthP50Ms: number;
  lastTenthP50Ms: number;
}

/** Nearest-rank percentile (p in 0..1) of a non-empty sample. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new RangeError('percentile of an empty sample');
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export function latencyStats(samples: readonly number[]): LatencyStats {
  const r = (n: number): number => Math.round(n * 100) / 100;
  const tenth = Math.max(1, Math.floor(samples.length / 10));
  return {
    n: samples.length,
    p50Ms: r(percentile(samples, 0.5)),
    p99Ms: r(percentile(samples, 0.99)),
    maxMs: r(Math.max(...samples)),
    meanMs: r(samples.reduce((a, b) => a + b, 0) / samples.length),
    firstTenthP50Ms: r(percentile(samples.slice(0, tenth), 0.5)),
    lastTenthP50Ms: r(percentile(samples.slice(-tenth), 0.5)),
  };
}

/** `1073741824`, `512M`, `1.5G`, `2GiB` → bytes (binary units). `name` goes into the refusal. */
export function parseSize(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!match) throw new Error(`${name}: expected a size such as 1073741824, 512M or 1.5G, got '${text}'`);
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.floor(Number(match[1]) * unit);
}

/** A positive whole number from an env knob, or the default when unset/empty. */
export function parseCount(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined || text.trim() === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a whole number ≥ 1, got '${text}'`);
  return n;
}
