/**
 * The credit window's growth rule against the bandwidth-delay product, on a pure model of the
 * credit loop: the real CreditWindow as the receiver, a sender that never sends past its latest
 * grant and at most `rate` bytes per millisecond, and each way of the loop a fixed delay. The
 * receiver handles bytes as they arrive, so the link or the window is the limit, never the CPU.
 * docs/reliability.md ("Credit window") gives the numbers `make bench` measured on real links.
 */
import { describe, expect, it } from 'vitest';
import { CreditWindow } from '../../agent/transfer/credit.js';
import { LIMITS } from '../../shared/limits.js';

interface Loop {
  /** Link rate, bytes per millisecond (1 Gbit/s = 125,000). */
  rate: number;
  /** Whole credit loop: grant to sender plus data to receiver (two 40 ms RTT legs through the controller: 80). */
  loopMs: number;
  durationMs: number;
}

interface Run {
  /** Bytes the receiver handled in each millisecond. */
  handledPerMs: number[];
  /** When, and after how many handled bytes, the window first covered rate × loop (null: never). */
  coveredAtMs: number | null;
  coveredAfterBytes: number | null;
  finalWindow: number;
}

function simulate({ rate, loopMs, durationMs }: Loop): Run {
  const oneWay = loopMs / 2;
  const grantsArriving = new Map<number, number>();
  const dataArriving = new Map<number, number>();
  let now = 0;
  const credit = new CreditWindow({ grant: (limit) => grantsArriving.set(now + oneWay, Math.max(grantsArriving.get(now + oneWay) ?? 0, limit)) });
  const bdp = rate * loopMs;
  let senderLimit = 0;
  let sent = 0;
  let handled = 0;
  const handledPerMs: number[] = [];
  let coveredAtMs: number | null = null;
  let coveredAfterBytes: number | null = null;
  credit.open(0);
  for (now = 0; now < durationMs; now += 1) {
    senderLimit = Math.max(senderLimit, grantsArriving.get(now) ?? 0);
    const arrived = dataArriving.get(now) ?? 0;
    handledPerMs.push(arrived);
    if (arrived > 0) {
      handled += arrived;
      credit.advance(handled);
      if (coveredAtMs === null && credit.size >= bdp) {
        coveredAtMs = now;
        coveredAfterBytes = handled;
      }
    }
    const send = Math.min(rate, senderLimit - sent);
    if (send > 0) {
      sent += send;
      dataArriving.set(now + oneWay, (dataArriving.get(now + oneWay) ?? 0) + send);
    }
  }
  return { handledPerMs, coveredAtMs, coveredAfterBytes, finalWindow: credit.size };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const GBIT = 125_000;

describe('credit window growth against the bandwidth-delay product', () => {
  it('over 1 Gbit/s with 40 ms RTT on each leg (an 80 ms loop), the window covers the 10 MB product within 12 MiB and the link runs full', () => {
    const run = simulate({ rate: GBIT, loopMs: 80, durationMs: 3_000 });
    // doubling after each whole window: 4 → 8 MiB after 4 MiB handled, → 16 MiB after 8 MiB more
    expect(run.coveredAfterBytes).not.toBeNull();
    expect(run.coveredAfterBytes!).toBeLessThanOrEqual(LIMITS.windowInitialBytes * 3);
    expect(run.finalWindow).toBe(LIMITS.windowMaxBytes);
    // about as long as TCP's slow start: a few loops, not seconds
    expect(run.coveredAtMs!).toBeLessThanOrEqual(5 * 80);
    // from then on the link, not the window, is the limit: every 100 ms moves rate × 100 ms
    for (let t = 1_000; t < 3_000; t += 100) expect(sum(run.handledPerMs.slice(t, t + 100))).toBe(GBIT * 100);
  });

  it('the default maximum covers a loop of up to windowMaxBytes / rate (134 ms at 1 Gbit/s)', () => {
    const longest = Math.floor(LIMITS.windowMaxBytes / GBIT);
    expect(longest).toBe(134);
    const run = simulate({ rate: GBIT, loopMs: longest - (longest % 2), durationMs: 4_000 });
    expect(sum(run.handledPerMs.slice(3_000, 4_000))).toBe(GBIT * 1_000);
  });

  it('beyond it the window is the limit: windowMaxBytes per loop (why a faster or longer link needs lanes or a larger max)', () => {
    const run = simulate({ rate: 10 * GBIT, loopMs: 80, durationMs: 4_000 });
    const perSecond = sum(run.handledPerMs.slice(3_000, 4_000));
    const windowBound = (LIMITS.windowMaxBytes / 80) * 1_000;
    expect(perSecond).toBeGreaterThan(windowBound * 0.95);
    expect(perSecond).toBeLessThan(windowBound * 1.05);
    expect(perSecond).toBeLessThan(10 * GBIT * 1_000 * 0.2);
  });
});
