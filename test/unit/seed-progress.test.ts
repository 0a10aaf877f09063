import { describe, expect, it } from 'vitest';
import { estimateEta, RateMeter } from '../../server-stub/seed/progress.js';

const MiB = 1024 * 1024;

describe('seed progress: rate and ETA', () => {
  it('shows the true average from the first samples, not a rate climbing from zero', () => {
    const meter = new RateMeter(3_000);
    expect(meter.sample(0, 1_000)).toBeNull();
    expect(meter.sample(50 * MiB, 1_500)).toBeCloseTo(100 * MiB, -3);
    expect(meter.sample(100 * MiB, 2_000)).toBeCloseTo(100 * MiB, -3);
  });

  it('follows a link that slows down once it has history', () => {
    const meter = new RateMeter(1_000);
    let bytes = 0;
    let t = 1_000;
    meter.sample(bytes, t);
    for (let i = 0; i < 30; i += 1) meter.sample((bytes += 100 * MiB * 0.25), (t += 250)); // 100 MiB/s
    for (let i = 0; i < 40; i += 1) meter.sample((bytes += 10 * MiB * 0.25), (t += 250)); // then 10 MiB/s
    expect(meter.value! / MiB).toBeGreaterThan(9);
    expect(meter.value! / MiB).toBeLessThan(15);
  });

  it('ignores samples closer than 200 ms and restarts cleanly after a pause', () => {
    const meter = new RateMeter();
    meter.sample(0, 1_000);
    const first = meter.sample(10 * MiB, 2_000);
    expect(meter.sample(11 * MiB, 2_100)).toBe(first);
    meter.reset(11 * MiB);
    meter.sample(11 * MiB, 60_000); // a reconnect took a minute: not counted as zero throughput
    expect(meter.sample(21 * MiB, 61_000)).toBeCloseTo(10 * MiB, -3);
  });

  it('estimates the time left, and says nothing without a rate or a total', () => {
    expect(estimateEta(100 * MiB, 40 * MiB, 20 * MiB)).toBe(3);
    expect(estimateEta(100 * MiB, 100 * MiB, 20 * MiB)).toBe(0);
    expect(estimateEta(null, 0, 20 * MiB)).toBeNull();
    expect(estimateEta(100, 0, null)).toBeNull();
    expect(estimateEta(100, 0, 0)).toBeNull();
  });
});
