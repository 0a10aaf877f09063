import { describe, expect, it } from 'vitest';
import { createBackoff } from '../../agent/connection/backoff.js';

/** A deterministic sequence of "random" draws. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

describe('reconnect backoff', () => {
  it('stays within [0, min(cap, base * 2^attempt))', () => {
    const upper = createBackoff({ baseMs: 100, capMs: 1_000, healthyMs: 60_000, random: () => 0.999999 });
    const ceilings = Array.from({ length: 8 }, () => upper.nextDelay());
    expect(ceilings).toEqual([99, 199, 399, 799, 999, 999, 999, 999]);
    const lower = createBackoff({ baseMs: 100, capMs: 1_000, healthyMs: 60_000, random: () => 0 });
    expect(Array.from({ length: 5 }, () => lower.nextDelay())).toEqual([0, 0, 0, 0, 0]);
  });

  it('draws a fresh jitter for every attempt', () => {
    const backoff = createBackoff({ baseMs: 1_000, capMs: 1_000, healthyMs: 60_000, random: draws(0.1, 0.7, 0.4) });
    expect([backoff.nextDelay(), backoff.nextDelay(), backoff.nextDelay()]).toEqual([100, 700, 400]);
    const real = createBackoff({ baseMs: 1_000, capMs: 1_000, healthyMs: 60_000 });
    const delays = new Set(Array.from({ length: 20 }, () => real.nextDelay()));
    expect(delays.size).toBeGreaterThan(1);
  });

  it('never overflows after many attempts (retry forever)', () => {
    const backoff = createBackoff({ baseMs: 1_000, capMs: 60_000, healthyMs: 60_000, random: () => 0.5 });
    for (let i = 0; i < 10_000; i++) backoff.nextDelay();
    expect(backoff.nextDelay()).toBe(30_000);
  });

  it('resets only after a connection was healthy for healthyMs', () => {
    const backoff = createBackoff({ baseMs: 100, capMs: 10_000, healthyMs: 60_000, random: () => 0.999999 });
    for (let i = 0; i < 4; i++) backoff.nextDelay();
    backoff.recordConnection(59_999);
    expect(backoff.attempt).toBe(4);
    expect(backoff.nextDelay()).toBe(1_599);
    backoff.recordConnection(0);
    expect(backoff.attempt).toBe(5);
    backoff.recordConnection(60_000);
    expect(backoff.attempt).toBe(0);
    expect(backoff.nextDelay()).toBe(99);
  });
});
