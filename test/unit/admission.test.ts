import { describe, expect, it } from 'vitest';
import { createAdmission, type Admission, type AdmissionOptions } from '../../server-stub/hub/admission.js';
import { parseRetryAfter, retryAfterDelay } from '../../agent/connection/retry-after.js';
import { ControllerList } from '../../agent/connection/controllers.js';

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
    expect(retryAfters).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    c.advance(999);
    expect(admission.admit().admitted).toBe(false);
    c.advance(1);
    expect(Array.from({ length: 12 }, () => admission.admit()).filter((d) => d.admitted)).toHaveLength(10);
  });

  it('never admits more than the rate within any sliding second, whatever the arrival pattern', () => {
    const c = clock();
    // A fixed rate (no fleet share): the window alone is under test here.
    const admission = createAdmission(() => 0, { minPerSecond: 20, fleetFraction: 0 }, c.now);
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
    // The fleet share alone (no herd term): an idle controller's rate before any herd arrives.
    const admission = createAdmission(() => (reads++, known), { minPerSecond: 10, fleetFraction: 0.05, herdSpreadSeconds: 0 }, c.now);
    expect(admission.ratePerSecond()).toBe(50);
    expect(Array.from({ length: 80 }, () => admission.admit()).filter((d) => d.admitted)).toHaveLength(50);
    expect(reads).toBe(1);
    known = 10;
    c.advance(1_000);
    expect(admission.ratePerSecond()).toBe(10);
  });

  it('paces each controller sharing the store by its share of the fleet, following how many share it', () => {
    const c = clock();
    let controllers = 3;
    const admission = createAdmission({ knownAgents: () => 9_000, controllers: () => controllers }, { minPerSecond: 10, fleetFraction: 0.05, herdSpreadSeconds: 0 }, c.now);
    // Three controllers on one store: each admits a third of what one alone would (450/s).
    expect(admission.ratePerSecond()).toBe(150);
    expect(Array.from({ length: 400 }, () => admission.admit()).filter((d) => d.admitted)).toHaveLength(150);
    // One of them died: the two left share the fleet.
    controllers = 2;
    c.advance(1_000);
    expect(admission.ratePerSecond()).toBe(225);
    controllers = 0; // never below one controller
    c.advance(1_000);
    expect(admission.ratePerSecond()).toBe(450);
  });

  it('sizes a fleet it has never seen by its herd: connected plus those holding a slot', () => {
    const c = clock();
    let connected = 0;
    const admission = createAdmission({ knownAgents: () => connected, connectedAgents: () => connected }, { minPerSecond: 50, fleetFraction: 0.05 }, c.now);
    // 10,000 new agents dial within a second: the rate grows with the herd as it arrives.
    const first = Array.from({ length: 10_000 }, () => admission.admit());
    const admitted = first.filter((d) => d.admitted).length;
    expect(admitted).toBeGreaterThan(50);
    expect(admitted).toBeLessThanOrEqual(500);
    connected = admitted;
    c.advance(1_000);
    const state = admission.state();
    expect(state.waiting).toBe(10_000 - admitted);
    expect(state.fleet).toBe(10_000);
    expect(state.ratePerSecond).toBe(500);
    // Each was handed a second with room at the rate of its moment: the herd is back in about 20 s.
    const retryAfters = first.flatMap((d) => (d.admitted ? [] : [d.retryAfterSeconds]));
    expect(Math.max(...retryAfters)).toBeLessThanOrEqual(25);
    const perSecond = new Map<number, number>();
    for (const r of retryAfters) perSecond.set(r, (perSecond.get(r) ?? 0) + 1);
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(500);
    // The next second admits the fleet's share, not the floor of 50.
    expect(Array.from({ length: 600 }, () => admission.admit()).filter((d) => d.admitted).length).toBeGreaterThanOrEqual(500);
  });

  it('counts a named agent once however often it dials, and not once admitted', () => {
    const c = clock();
    const admission = createAdmission({ knownAgents: () => 0 }, { minPerSecond: 1, fleetFraction: 0.5 }, c.now);
    expect(admission.admit('db-0').admitted).toBe(true);
    for (let i = 0; i < 100; i++) expect(admission.admit('db-1').admitted).toBe(false);
    expect(admission.state().waiting).toBe(1);
    admission.admit('db-2');
    expect(admission.state().waiting).toBe(2);
    // db-1 comes back when told and is admitted: it holds no slot any more.
    c.advance(1_000);
    expect(admission.admit('db-1').admitted).toBe(true);
    expect(admission.state().waiting).toBe(1);
    // Slots that fall due are dropped whether or not the agent came back.
    c.advance(60_000);
    expect(admission.state().waiting).toBe(0);
  });

  it('halves its share while the event loop lags and grows it back when calm, never below the floor', () => {
    const c = clock();
    let delayMs = 500;
    const admission = createAdmission({ knownAgents: () => 10_000, eventLoopDelayMs: () => delayMs }, { minPerSecond: 50, fleetFraction: 0.05, herdSpreadSeconds: 0, busyDelayMs: 100, calmDelayMs: 40 }, c.now);
    const rates: number[] = [];
    for (let s = 0; s < 6; s++) {
      rates.push(admission.ratePerSecond());
      c.advance(1_000);
    }
    // 500 × 0.5, 0.25, ... down to a tenth of the share (50, also the floor).
    expect(rates).toEqual([250, 125, 63, 50, 50, 50]);
    delayMs = 5;
    const back: number[] = [];
    for (let s = 0; s < 10; s++) {
      back.push(admission.ratePerSecond());
      c.advance(1_000);
    }
    expect(back[0]).toBe(100);
    expect(back.at(-1)).toBe(500);
    // In between: the load share is neither halved nor grown.
    delayMs = 70;
    expect(admission.ratePerSecond()).toBe(500);
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

/** A deterministic stand-in for Math.random (a linear congruential generator). */
function lcg(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

interface Returning {
  /** Which controller the agent dials. */
  to: number;
  /** When it first dials, ms from the start. */
  at: number;
}

/**
 * Agents dialing controllers paced by createAdmission, on one hand-moved clock: a refused agent
 * dials again after its Retry-After plus the agent's own jitter (retryAfterDelay). `holding[i]`:
 * the sessions controller i held before; `known`: the agents the shared store knows. Returns the
 * welcomes per second across all controllers and when the last agent was welcomed.
 */
function simulateHerd(agents: Returning[], holding: number[], known: number, options: Partial<AdmissionOptions>): { perSecond: number[]; lastMs: number } {
  const c = clock(0);
  const admitted = holding.map(() => 0);
  const admissions: Admission[] = holding.map((held, i) =>
    createAdmission({ knownAgents: () => known, connectedAgents: () => held + admitted[i]!, controllers: () => holding.length }, options, c.now),
  );
  const random = lcg(42);
  const due = agents.map((a) => a.at);
  const perSecond: number[] = [];
  let left = agents.length;
  let lastMs = 0;
  for (let t = 0; left > 0 && t < 120_000; t += 10) {
    c.advance(t - c.now());
    for (let i = 0; i < agents.length; i++) {
      if (due[i]! > t) continue;
      const decision = admissions[agents[i]!.to]!.admit(`agent-${i}`);
      if (decision.admitted) {
        due[i] = Number.POSITIVE_INFINITY;
        admitted[agents[i]!.to]!++;
        perSecond[Math.floor(t / 1_000)] = (perSecond[Math.floor(t / 1_000)] ?? 0) + 1;
        left--;
        lastMs = t;
      } else due[i] = t + retryAfterDelay(decision.retryAfterSeconds * 1_000, 60_000, random);
    }
  }
  expect(left).toBe(0);
  return { perSecond: Array.from(perSecond, (n) => n ?? 0), lastMs };
}

/**
 * The return of a dead controller's agents as the agent's link does it (agent/connection/link.ts,
 * with its own ControllerList): every agent lists all controllers; the dead one refuses the
 * connection (the shared backoff, full jitter from 1 s doubling, then the next URL); a live one
 * admits or answers 503 + Retry-After, which holds that controller and moves on to the next after
 * a jitter below 1 s. So every survivor sees most of the herd. `holding[i]` null: the dead one.
 * `sharing`: the controllers each survivor believes share the store (the dead one stays in the
 * membership for a few announce intervals).
 */
function simulateReturn(count: number, start: (i: number) => number, holding: Array<number | null>, known: number, sharing: number, options: Partial<AdmissionOptions> = {}): { perSecond: number[]; lastMs: number } {
  const c = clock(0);
  const admitted = holding.map(() => 0);
  const admissions = holding.map((held, i) => (held === null ? null : createAdmission({ knownAgents: () => known, connectedAgents: () => held + admitted[i]!, controllers: () => sharing }, options, c.now)));
  const random = lcg(11);
  const urls = holding.map((_, i) => `ws://controller-${i}/agent`);
  const agents = Array.from({ length: count }, (_, i) => {
    const list = new ControllerList(urls, c.now);
    list.select(start(i));
    return { list, attempt: 0, due: Math.floor(random() * 1_000) };
  });
  const perSecond: number[] = [];
  let left = count;
  let lastMs = 0;
  for (let t = 0; left > 0 && t < 180_000; t += 10) {
    c.advance(t - c.now());
    agents.forEach((agent, i) => {
      if (agent.due > t) return;
      const admission = admissions[agent.list.position];
      if (!admission) {
        agent.attempt++;
        agent.list.advance();
        agent.due = t + Math.max(Math.floor(random() * Math.min(60_000, 1_000 * 2 ** agent.attempt)), agent.list.heldFor());
        return;
      }
      const decision = admission.admit(`agent-${i}`);
      if (decision.admitted) {
        agent.due = Number.POSITIVE_INFINITY;
        admitted[agent.list.position]!++;
        perSecond[Math.floor(t / 1_000)] = (perSecond[Math.floor(t / 1_000)] ?? 0) + 1;
        left--;
        lastMs = t;
        return;
      }
      agent.list.holdOff(retryAfterDelay(decision.retryAfterSeconds * 1_000, 60_000, random));
      agent.list.advance();
      agent.due = t + Math.max(agent.list.heldFor(), Math.floor(random() * 1_000));
    });
  }
  expect(left).toBe(0);
  return { perSecond: Array.from(perSecond, (n) => n ?? 0), lastMs };
}

describe('admission of a herd across controllers', () => {
  it('paces a herd that goes down its lists, refused by one survivor and dialing the next: the busiest second stays near 6%', () => {
    // Controller 0 of three died; its 2,952 agents' lists start at controller 1 (the next one);
    // each survivor held 3,000. Whether the survivors still count the dead one or not.
    for (const sharing of [2, 3]) {
      const { perSecond, lastMs } = simulateReturn(2_952, () => 1, [null, 3_000, 3_000], 9_000, sharing);
      const busiest = Math.max(...perSecond) / 2_952;
      console.log(`[admission] a herd going down its lists, ${sharing} sharing the store: busiest second ${(busiest * 100).toFixed(1)}%, all back in ${(lastMs / 1000).toFixed(1)} s`);
      expect(busiest).toBeLessThanOrEqual(0.065);
      expect(lastMs).toBeLessThan(40_000);
    }
    // With a 20 s spread each survivor, seeing most of the herd, admitted a twentieth of it.
    const shorter = simulateReturn(2_952, () => 1, [null, 3_000, 3_000], 9_000, 2, { clusterHerdSpreadSeconds: 20 });
    expect(Math.max(...shorter.perSecond) / 2_952).toBeGreaterThan(0.07);
  });


  // The dead controller's agents redial within about a second (their backoff's jitter).
  const herdOf = (n: number, to: (i: number) => number): Returning[] => Array.from({ length: n }, (_, i) => ({ to: to(i), at: Math.floor((i * 997) % 1_000) }));

  it("spreads a dead controller's agents over the survivors' herd spread: the busiest second stays under 10% of them", () => {
    // 3 × 3,000 on one store; one dies, its 3,236 come back to the two left (unevenly: lists).
    const herd = herdOf(3_236, (i) => (i % 3 === 0 ? 1 : 0));
    const { perSecond, lastMs } = simulateHerd(herd, [3_000, 3_000], 9_000, { minPerSecond: 50, fleetFraction: 0.05 });
    expect(Math.max(...perSecond) / herd.length).toBeLessThanOrEqual(0.1);
    expect(lastMs).toBeLessThan(60_000);
    // The survivors admit about 5% of the herd a second together (the spread is 20 s), whatever the split.
    expect(Math.max(...perSecond) / herd.length).toBeLessThanOrEqual(0.06);
    // Without the herd term each survivor paced by its share of the fleet (~230/s): 14% and more.
    const before = simulateHerd(herd, [3_000, 3_000], 9_000, { minPerSecond: 50, fleetFraction: 0.05, herdSpreadSeconds: 0 });
    expect(Math.max(...before.perSecond) / herd.length).toBeGreaterThan(0.1);
  });

  it("does not count a survivor's own fleet, connected half a minute before, into the next herd", () => {
    // Each survivor admitted its own 3,000 agents (waves over 20 s), then, 25 s after the last of
    // them, the third controller dies and its 2,882 come back to the two.
    const c = clock(0);
    const admitted = [0, 0];
    const admissions = [0, 1].map((i) => createAdmission({ knownAgents: () => 9_000, connectedAgents: () => admitted[i]!, controllers: () => 3 }, {}, c.now));
    const random = lcg(3);
    const run = (count: number, prefix: string, spreadMs: number): number[] => {
      const due = Array.from({ length: count }, (_, i) => (i * 997) % spreadMs);
      const perSecond: number[] = [];
      const start = c.now();
      for (let t = 0, left = count; left > 0 && t < 120_000; t += 10) {
        c.advance(start + t - c.now());
        for (let i = 0; i < count; i++) {
          if (due[i]! > t) continue;
          const decision = admissions[i % 2]!.admit(`${prefix}-${i}`);
          if (decision.admitted) {
            due[i] = Number.POSITIVE_INFINITY;
            admitted[i % 2]!++;
            perSecond[Math.floor(t / 1_000)] = (perSecond[Math.floor(t / 1_000)] ?? 0) + 1;
            left--;
          } else due[i] = t + retryAfterDelay(decision.retryAfterSeconds * 1_000, 60_000, random);
        }
      }
      return Array.from(perSecond, (n) => n ?? 0);
    };
    run(6_000, 'own', 20_000);
    c.advance(25_000);
    const returning = run(2_882, 'returning', 1_000);
    expect(returning.reduce((a, b) => a + b, 0)).toBe(2_882);
    expect(Math.max(...returning) / 2_882).toBeLessThanOrEqual(0.06);
  });

  it('paces 10,000 new agents on one controller by its fleet share as before (the herd term does not bind)', () => {
    const fleet = herdOf(10_000, () => 0);
    const now = simulateHerd(fleet, [0], 0, { minPerSecond: 50, fleetFraction: 0.05 });
    const shareOnly = simulateHerd(fleet, [0], 0, { minPerSecond: 50, fleetFraction: 0.05, herdSpreadSeconds: 0 });
    console.log(`[admission] 10,000 new agents on one controller: all in ${(now.lastMs / 1000).toFixed(1)} s (fleet share alone ${(shareOnly.lastMs / 1000).toFixed(1)} s)`);
    expect(Math.abs(now.lastMs - shareOnly.lastMs)).toBeLessThanOrEqual(2_000);
    expect(now.lastMs).toBeLessThan(30_000);
  });

  it('lets a small herd in at the floor: minPerSecond is never held back', () => {
    // 200 agents to two survivors: each admits its floor of 50 a second, the herd is back in about 2 s.
    const { perSecond, lastMs } = simulateHerd(herdOf(200, (i) => i % 2), [200, 200], 600, { minPerSecond: 50, fleetFraction: 0.05 });
    expect(Math.max(...perSecond)).toBeLessThanOrEqual(100);
    expect(lastMs).toBeLessThan(5_000);
  });
});

describe('welcome pacing', () => {
  it('holds no lone welcome, and welcomes handshakes that end together within the rate', () => {
    const c = clock();
    const admission = createAdmission(() => 0, { minPerSecond: 10, fleetFraction: 0 }, c.now);
    expect(admission.welcomeDelayMs()).toBe(0);
    c.advance(5_000);
    // 35 handshakes end in the same millisecond (the store stalled them together).
    const moments = Array.from({ length: 35 }, () => c.now() + admission.welcomeDelayMs());
    for (let i = 0; i + 10 < moments.length; i++) expect(moments[i + 10]! - moments[i]!).toBeGreaterThanOrEqual(1_000);
    // First come, first welcomed; the first ten go at once.
    expect([...moments].sort((a, b) => a - b)).toEqual(moments);
    expect(moments.slice(0, 10).every((m) => m === c.now())).toBe(true);
    expect(Math.max(...moments) - c.now()).toBe(3_000);
  });

  it('never holds a welcome longer than welcomeMaxWaitMs, and 0 turns pacing off', () => {
    const c = clock();
    const capped = createAdmission(() => 0, { minPerSecond: 5, fleetFraction: 0, welcomeMaxWaitMs: 1_500 }, c.now);
    const waits = Array.from({ length: 100 }, () => capped.welcomeDelayMs());
    expect(Math.max(...waits)).toBe(1_500);
    const off = createAdmission(() => 0, { minPerSecond: 5, fleetFraction: 0, welcomeMaxWaitMs: 0 }, c.now);
    expect(Array.from({ length: 100 }, () => off.welcomeDelayMs()).every((w) => w === 0)).toBe(true);
  });

  it("smooths a returning herd whose handshakes stall in bursts: the busiest second of welcomes stays near the rate", () => {
    // Two survivors take 3,236 agents; every admitted handshake waits for a store that answers
    // only every 2.5 s (a loaded machine's stalls), so without pacing the welcomes come in bursts.
    const run = (welcomeMaxWaitMs: number): number => {
      const c = clock(0);
      const admitted = [0, 0];
      const admissions = [0, 1].map((i) => createAdmission({ knownAgents: () => 9_000, connectedAgents: () => 3_000 + admitted[i]!, controllers: () => 2 }, { welcomeMaxWaitMs }, c.now));
      const random = lcg(7);
      const due = Array.from({ length: 3_236 }, (_, i) => (i * 997) % 1_000);
      const handshakeEnds: Array<{ at: number; to: number }> = [];
      const perSecond: number[] = [];
      for (let t = 0; t < 120_000; t += 10) {
        c.advance(t - c.now());
        for (let i = 0; i < due.length; i++) {
          if (due[i]! > t) continue;
          const to = i % 3 === 0 ? 1 : 0;
          const decision = admissions[to]!.admit(`agent-${i}`);
          if (!decision.admitted) {
            due[i] = t + retryAfterDelay(decision.retryAfterSeconds * 1_000, 60_000, random);
            continue;
          }
          due[i] = Number.POSITIVE_INFINITY;
          admitted[to]!++;
          handshakeEnds.push({ at: Math.ceil((t + 1) / 2_500) * 2_500, to });
        }
        for (const end of handshakeEnds.filter((e) => e.at === t)) {
          const second = Math.floor((t + admissions[end.to]!.welcomeDelayMs()) / 1_000);
          perSecond[second] = (perSecond[second] ?? 0) + 1;
        }
      }
      const counts = Array.from(perSecond, (n) => n ?? 0);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(3_236);
      return Math.max(...counts) / 3_236;
    };
    const unpaced = run(0);
    const paced = run(3_000);
    console.log(`[admission] busiest second of welcomes: ${(unpaced * 100).toFixed(1)}% unpaced, ${(paced * 100).toFixed(1)}% paced`);
    expect(unpaced).toBeGreaterThan(0.1);
    expect(paced).toBeLessThanOrEqual(0.07);
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
