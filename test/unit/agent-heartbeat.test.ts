/**
 * The agent's heartbeat (agent/connection/heartbeat.ts) on fake timers: pure timing logic. The
 * real link's behaviour against a controller is in test/integration/agent-link.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentPingMs, startHeartbeat } from '../../agent/connection/heartbeat.js';

describe('agent heartbeat', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('every: pings every interval whatever arrives, and is dead after deadAfterMs of silence', () => {
    const pings: number[] = [];
    let dead = 0;
    const hb = startHeartbeat({ intervalMs: 20_000, deadAfterMs: 45_000, sendPing: () => pings.push(Date.now()), onDead: () => (dead += 1) });
    const start = Date.now();
    for (let t = 0; t < 6; t++) {
      vi.advanceTimersByTime(10_000);
      hb.touch();
    }
    expect(pings.map((at) => at - start)).toEqual([20_000, 40_000, 60_000]);
    expect(dead).toBe(0);
    vi.advanceTimersByTime(45_000);
    expect(dead).toBe(1);
    hb.dispose();
  });

  it('when-silent: never pings while the controller talks; pings after a silence, again while it lasts, then is dead', () => {
    const pings: number[] = [];
    let dead = 0;
    const interval = silentPingMs(20_000, 45_000);
    expect(interval).toBe(30_000);
    const hb = startHeartbeat({ mode: 'when-silent', intervalMs: interval, deadAfterMs: 45_000, sendPing: () => pings.push(Date.now()), onDead: () => (dead += 1) });
    const start = Date.now();
    // The controller's sweep pings every 20-21 s: the agent only answers.
    for (let t = 0; t < 10; t++) {
      vi.advanceTimersByTime(20_500);
      hb.touch();
    }
    expect(pings).toEqual([]);
    // Then it goes silent: one ping 30 s after the last frame; the link is dead at 45 s.
    const silentFrom = Date.now();
    vi.advanceTimersByTime(44_999);
    expect(pings.map((at) => at - silentFrom)).toEqual([30_000]);
    expect(dead).toBe(0);
    vi.advanceTimersByTime(1);
    expect(dead).toBe(1);
    vi.advanceTimersByTime(120_000);
    expect(pings).toHaveLength(1); // nothing after death
    expect(Date.now() - start).toBeGreaterThan(0);
  });

  it('when-silent, with a long deadAfterMs: pings every interval while the silence lasts', () => {
    const pings: number[] = [];
    const hb = startHeartbeat({ mode: 'when-silent', intervalMs: 3_000, deadAfterMs: 100_000, sendPing: () => pings.push(Date.now()), onDead: () => undefined });
    const start = Date.now();
    vi.advanceTimersByTime(10_000);
    expect(pings.map((at) => at - start)).toEqual([3_000, 6_000, 9_000]);
    hb.touch(); // the answer came at 10 s
    vi.advanceTimersByTime(5_000);
    expect(pings.map((at) => at - start)).toEqual([3_000, 6_000, 9_000, 13_000]);
    hb.dispose();
    vi.advanceTimersByTime(10_000);
    expect(pings).toHaveLength(4);
  });

  it('the silent ping waits one and a half periods, and always comes before the link is dead', () => {
    expect(silentPingMs(20_000, 45_000)).toBe(30_000);
    expect(silentPingMs(2_000, 8_000)).toBe(3_000);
    expect(silentPingMs(20_000, 30_000)).toBe(25_000);
    for (const [hb, dead] of [[1_000, 1_500], [20_000, 21_000], [500, 100_000]] as const) expect(silentPingMs(hb, dead)).toBeLessThan(dead);
  });
});
