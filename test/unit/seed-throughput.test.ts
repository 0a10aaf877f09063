import { describe, expect, it } from 'vitest';
import { ThroughputSeries } from '../../server-stub/seed/throughput.js';

describe('ThroughputSeries', () => {
  it('takes one sample per interval with the rate over that interval', () => {
    const series = new ThroughputSeries();
    expect(series.record(10_000, 0, 'transfer', 1)).toBe(true);
    expect(series.record(10_400, 100, 'transfer', 1)).toBe(false); // within the interval
    expect(series.record(11_000, 2_000_000, 'transfer', 1)).toBe(true);
    expect(series.record(13_000, 3_000_000, 'transfer', 1)).toBe(true);
    expect(series.toJSON().samples.map((s) => s.bytesPerSec)).toEqual([0, 2_000_000, 500_000]);
    // forced (a stage change): recorded even within the interval
    expect(series.record(13_100, 3_000_000, 'verify', 1, true)).toBe(true);
  });

  it('shows a streamed attempt starting again from 0 as no throughput, never negative', () => {
    const series = new ThroughputSeries();
    series.record(0, 0, 'transfer', 1);
    series.record(1000, 5000, 'transfer', 1);
    series.record(2000, 0, 'transfer', 2);
    expect(series.toJSON().samples.at(-1)).toMatchObject({ bytesPerSec: 0, attempt: 2 });
  });

  it('stays within maxPoints by merging neighbours and doubling the interval', () => {
    const series = new ThroughputSeries(null, { maxPoints: 100, maxMarks: 5 });
    for (let i = 0; i <= 1000; i++) series.record(i * 1000, i * 1000, 'transfer', 1);
    const data = series.toJSON();
    expect(data.samples.length).toBeLessThanOrEqual(100);
    expect(data.samples.length).toBeGreaterThan(40);
    expect(data.intervalMs).toBeGreaterThan(1000);
    // The whole history is still covered, newest point last, the rate preserved.
    expect(data.samples[0]!.t).toBeLessThan(20_000);
    expect(1_000_000 - data.samples.at(-1)!.t).toBeLessThan(data.intervalMs);
    for (const s of data.samples.slice(1)) expect(s.bytesPerSec).toBe(1000);
    const times = data.samples.map((s) => s.t);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('keeps stage marks over others when marks are bounded, and round-trips through JSON', () => {
    const series = new ThroughputSeries(null, { maxPoints: 100, maxMarks: 5 });
    series.mark({ t: 1, kind: 'stage', label: 'transfer', stage: 'transfer' });
    for (let a = 2; a < 10; a++) series.mark({ t: a, kind: 'attempt', label: `attempt ${a}`, attempt: a });
    const marks = series.toJSON().marks;
    expect(marks).toHaveLength(5);
    expect(marks[0]!.kind).toBe('stage');
    expect(marks.at(-1)!.attempt).toBe(9);
    const copy = new ThroughputSeries(JSON.parse(JSON.stringify(series)) as ReturnType<ThroughputSeries['toJSON']>);
    expect(copy.toJSON()).toEqual(series.toJSON());
  });
});
