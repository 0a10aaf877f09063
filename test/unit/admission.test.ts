import { describe, expect, it } from 'vitest';
import { createAdmission } from '../../server-stub/hub/admission.js';
import { parseRetryAfter, retryAfterDelay } from '../../agent/connection/retry-after.js';

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('admission pacing', () => {
  it('admits at most the rate in any one-second window and refuses the rest with a Retry-After', () => {
    const c = clock();
    const admission = createAdmission(() => 0, { minPerSecond: 10, fleetFraction: 0.05 }, c.now);
    const first = Array.from({ length: 25 }, () => admission.admit());
    expect(first.filter((d) => d.admitted)).toHaveLength(10);
    // The refused are handed successive seconds: 10 per second of Retry-After.
    const retryAfters = first.flatMap((d) => (d.admitted ? [] : [d.retryAfterSeconds]));
    expect(retryAfters).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]);
    c.advance(999);
    expect(admission.admit().admitted).toBe(false);
    c.advance(1);
    expect(Array.from({ length: 12 }, () => admission.admit()).filter((d) => d.admitted)).toHaveLength(10);
  });

  it('never admits more than the rate within any sliding second, whatever the arrival pattern', () => {
    const c = clock();
    const admission = createAdmission(() => 0, { minPerSecond: 20 }, c.now);
    const admittedAt: number[] = [];
    let seed = 7;
    for (let i = 0; i < 5_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      c.advance(seed % 7);
      if (admission.admit().admitted) admittedAt.push(c.now());
    }
    for (let i = 0; i + 20 < admittedAt.length; i++) expect(admittedAt[i + 20]! - admittedAt[i]!).toBeGreaterThanOrEqual(1_000);
  });

  it('scales with the number of known agents, read from the store at most once a second', () => {
    const c = clock();
    let known = 1_000;
    let reads = 0;
    const admission = createAdmission(() => (reads++, known), { minPerSecond: 10, fleetFraction: 0.05 }, c.now);
    expect(admission.ratePerSecond()).toBe(50);
    expect(Array.from({ length: 80 }, () => admission.admit()).filter((d) => d.admitted)).toHaveLength(50);
    expect(reads).toBe(1);
    known = 10;
    c.advance(1_000);
    expect(admission.ratePerSecond()).toBe(10);
  });

  it('caps the Retry-After and counts refusals for one summary line', () => {
    const c = clock();
    const admission = createAdmission(() => 0, { minPerSecond: 1, maxRetryAfterSeconds: 5 }, c.now);
    admission.admit();
    const refused = Array.from({ length: 20 }, () => admission.admit());
    expect(Math.max(...refused.map((d) => (d.admitted ? 0 : d.retryAfterSeconds)))).toBe(5);
    expect(admission.takeRefusedCount()).toBe(20);
    expect(admission.takeRefusedCount()).toBe(0);
  });
});

describe('Retry-After on the agent', () => {
  it('reads delta-seconds and HTTP dates, and ignores what it cannot read', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3_000);
    expect(parseRetryAfter(['7'], now)).toBe(7_000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    for (const bad of [undefined, '', 'soon', '-1', '1.5', '99999999999']) expect(parseRetryAfter(bad, now)).toBeNull();
  });

  it('waits at least what was asked, plus a jitter, within the cap', () => {
    expect(retryAfterDelay(2_000, 60_000, () => 0)).toBe(2_000);
    expect(retryAfterDelay(2_000, 60_000, () => 0.5)).toBe(2_500);
    expect(retryAfterDelay(20_000, 60_000, () => 0.5)).toBe(20_500);
    expect(retryAfterDelay(20_000, 60_000, () => 0.999)).toBe(20_999);
    expect(retryAfterDelay(120_000, 60_000, () => 0.5)).toBe(60_000);
  });
});
