/**
 * Admission pacing for agent upgrades (docs/reliability.md, "Admission"). After a controller
 * restart the whole fleet redials within a few seconds; accepting them all at once spikes CPU,
 * SQLite writes and resumed calls. At most `rate` new sessions are admitted in any one-second
 * window. The rest are answered 503 with a Retry-After that hands each refused agent a future
 * second with room left at the current rate (a virtual queue: no second holds more agents than
 * the rate), so they return spread out instead of all at once.
 *
 * The rate is a share of the fleet, or of the herd when that is smaller, held back by load:
 *
 *   rate = max(minPerSecond, load × min(fleetFraction × fleet, herd / herdSpreadSeconds))
 *
 * - `fleet` is the larger of this controller's share of the agents the store knows (all of them
 *   divided by the controllers sharing the store, in cluster mode) and the agents that want a session now
 *   (connected plus those holding a future slot of the virtual queue). The second term sizes a
 *   fleet the controller has never seen (a first start, a new data dir) by its own herd, so
 *   10,000 new agents are not paced as if they were 50.
 * - `herd` is the agents that wanted a new session lately: those admitted within the last
 *   herdSpreadSeconds plus those holding a slot. Whatever the size of the fleet a controller
 *   already holds, a herd arriving at once (the agents of a controller that died, coming to the
 *   survivors) is spread over at least `herdSpreadSeconds`; each survivor paces the part that came
 *   to it, so the cluster admits about 1 / herdSpreadSeconds of the whole herd a second. A fleet
 *   connecting to a controller that held none of it is its own herd (those admitted in the last
 *   spread plus those waiting for their second), and the fleet share, then no larger than the
 *   herd term, paces it as before. One spread, not more: a controller that admitted its own fleet
 *   half a minute ago must not count those agents into the next herd (measured: counted over
 *   three spreads, a controller killed 17 s after the cluster's fleet connected saw its agents
 *   return at 14.6% in the busiest second, docs/scale-out.md).
 * - `load` (0.1..1) is measured: the event loop's delay over the last second. Above
 *   `busyDelayMs` it halves, below `calmDelayMs` it grows back by a tenth a second. A controller
 *   that cannot keep up admits less, one that idles admits the full share. `minPerSecond` is
 *   never held back, so a loaded controller still takes agents in.
 */
import { CONTROLLER_LIMITS } from '../limits.js';

export interface AdmissionOptions {
  /** New sessions per second never go below this. @default 50 */
  minPerSecond: number;
  /** Share of the fleet admitted per second. @default 0.05 (the fleet is back in about 20 s) */
  fleetFraction: number;
  /** Longest Retry-After handed out, in seconds. @default 30 */
  maxRetryAfterSeconds: number;
  /**
   * A herd of new sessions is spread over at least this many seconds (0: no herd term, the fleet
   * share alone). @default 20 (5% of a herd a second, as the fleet share: a whole fleet coming
   * back to one controller is paced as before)
   */
  herdSpreadSeconds: number;
  /**
   * The same while other controllers share the store (cluster mode). @default 25 (4% a second per
   * controller). A refused agent goes down its list to the next controller, so each survivor soon
   * sees most of the herd, not its part: two survivors admit up to 8% of it a second (at 20 s
   * it was 10%, and the bench's busiest second measured 10.1–10.3%). Alone, a controller keeps
   * the shorter spread: at 25 s 10,000 new agents took 66.2 s to connect in `make bench`.
   */
  clusterHerdSpreadSeconds: number;
  /** Event-loop delay (ms, p99 over the last second) above which the load share halves. @default 100 */
  busyDelayMs: number;
  /** Event-loop delay (ms) below which the load share grows back. @default 40 */
  calmDelayMs: number;
  /**
   * Longest a welcome is held back to keep welcomes within the rate (ms; 0: welcomes are not
   * paced). Admitted upgrades whose handshakes stalled together on the store would otherwise be
   * welcomed in one burst. Below the agent's handshake timeout (15 s) by far. @default 3000
   */
  welcomeMaxWaitMs: number;
}

export const ADMISSION_DEFAULTS: AdmissionOptions = {
  minPerSecond: 50,
  fleetFraction: 0.05,
  maxRetryAfterSeconds: 30,
  herdSpreadSeconds: 20,
  clusterHerdSpreadSeconds: 25,
  busyDelayMs: 100,
  calmDelayMs: 40,
  welcomeMaxWaitMs: 3_000,
};

/** What admission measures; each is read at most once a second. */
export interface AdmissionProbes {
  /** Agents the store knows (ever completed a handshake). */
  knownAgents(): number;
  /** Agents with an open session. @default none */
  connectedAgents?(): number;
  /**
   * Controllers sharing the store's fleet now, this one included (cluster mode): each paces by
   * its share, so N controllers together admit what one would. @default 1
   */
  controllers?(): number;
  /** The event loop's delay since the previous read, ms (p99). @default not measured: load stays 1 */
  eventLoopDelayMs?(): number;
}

export type AdmissionDecision = { admitted: true } | { admitted: false; retryAfterSeconds: number; ratePerSecond: number };

export interface AdmissionState {
  ratePerSecond: number;
  /** The fleet size the rate is a share of. */
  fleet: number;
  /** Agents admitted within the herd spread plus those waiting. */
  herd: number;
  /** Refused agents holding a future slot. */
  waiting: number;
  /** The load share, 0.1..1. */
  load: number;
  eventLoopDelayMs: number | null;
}

export interface Admission {
  /**
   * Decides on one authenticated upgrade; an admitted one counts against the current window.
   * `agentId`, when the credential names one, counts a refused agent once however often it
   * dials, so a herd that ignores Retry-After cannot inflate the fleet it is paced by.
   */
  admit(agentId?: string): AdmissionDecision;
  /** The current rate (new sessions per second). */
  ratePerSecond(): number;
  /** The rate and what it was computed from (for logs and metrics). */
  state(): AdmissionState;
  /** Refusals since the last call (for one summarised log line per interval). */
  takeRefusedCount(): number;
  /**
   * Reserves a moment to send a welcome, so at most the rate are sent in any sliding second, and
   * returns how long to wait for it (ms; 0 when the last second had room, so a lone agent is
   * never held). Upgrades are paced when they arrive; this paces them again when their
   * handshakes end, which the store can bunch. Never more than `welcomeMaxWaitMs`.
   */
  welcomeDelayMs(): number;
}

/** The rates are per second: this is the unit, not a tunable. */
const WINDOW_MS = 1_000;
/** The load share never drops below this: a tenth of the fleet share (minPerSecond still holds). */
const MIN_LOAD = 0.1;
/**
 * Moments in time, never decreasing, of which those within the last second (and ahead of it)
 * count: the admissions of the current window, the welcomes reserved. Dropped from the front.
 */
class Window {
  private readonly times: number[] = [];
  private head = 0;

  /** Forgets the moments a second or more before `at`. */
  drop(at: number): void {
    while (this.head < this.times.length && at - this.times[this.head]! >= WINDOW_MS) this.head++;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head);
      this.head = 0;
    }
  }

  get size(): number {
    return this.times.length - this.head;
  }

  /** The `n`th latest moment kept (1: the latest); undefined beyond `size`. */
  latest(n = 1): number | undefined {
    return n <= this.size ? this.times[this.times.length - n] : undefined;
  }

  push(at: number): void {
    this.times.push(at);
  }
}

/** The herd is counted over this many spreads (see the header). */
const HERD_WINDOWS = 1;
/** What the load share grows back by in a calm second. */
const LOAD_STEP = 0.1;

export function createAdmission(probes: AdmissionProbes | (() => number), options: Partial<AdmissionOptions> = {}, now: () => number = Date.now): Admission {
  const settings: AdmissionOptions = { ...ADMISSION_DEFAULTS, ...options };
  const probe: AdmissionProbes = typeof probes === 'function' ? { knownAgents: probes } : probes;
  // Admission times in the last window; never more than the rate.
  const recent = new Window();
  // Slots handed out and not yet due, per second (at most maxRetryAfterSeconds + 1 keys), with
  // the named agents holding them; `dueOf` is each named agent's current slot.
  const slotsBySecond = new Map<number, { count: number; agentIds: string[] }>();
  const dueOf = new Map<string, number>();
  let waiting = 0;
  // Admissions per second over the last HERD_WINDOWS × spread (at most that many keys), and their sum.
  const admittedBySecond = new Map<number, number>();
  let admittedRecently = 0;
  let known = 0;
  let connected = 0;
  // herdSpreadSeconds, or clusterHerdSpreadSeconds while other controllers share the store.
  let spread = settings.herdSpreadSeconds;
  let measuredAt = -Infinity;
  let load = 1;
  let delayMs: number | null = null;
  let refused = 0;
  // The moments reserved for welcomes within the last second and ahead.
  const welcomes = new Window();

  /** Agents handed second S dial again within [S, S + 1) (Retry-After plus a jitter): by S + 2 they have. */
  function dropDueSlots(at: number): void {
    const second = Math.floor(at / 1_000);
    for (const [s, slots] of slotsBySecond) {
      if (s >= second - 1) continue;
      waiting -= slots.count;
      for (const id of slots.agentIds) if (dueOf.get(id) === s) dueOf.delete(id);
      slotsBySecond.delete(s);
    }
  }

  /** The named agent no longer holds the slot it was given (it was admitted, or gets a new one). */
  function releaseSlot(agentId: string | undefined): void {
    if (agentId === undefined) return;
    const due = dueOf.get(agentId);
    if (due === undefined) return;
    dueOf.delete(agentId);
    const slots = slotsBySecond.get(due);
    if (!slots) return;
    slots.count--;
    waiting--;
  }

  function holdSlot(due: number, agentId: string | undefined): void {
    let slots = slotsBySecond.get(due);
    if (!slots) slotsBySecond.set(due, (slots = { count: 0, agentIds: [] }));
    slots.count++;
    waiting++;
    if (agentId === undefined) return;
    slots.agentIds.push(agentId);
    dueOf.set(agentId, due);
  }

  function measure(at: number): void {
    if (at - measuredAt < CONTROLLER_LIMITS.fleetSizeTtlMs) return;
    measuredAt = at;
    const sharing = Math.max(1, probe.controllers?.() ?? 1);
    known = Math.ceil(probe.knownAgents() / sharing);
    spread = settings.herdSpreadSeconds > 0 && sharing > 1 ? settings.clusterHerdSpreadSeconds : settings.herdSpreadSeconds;
    connected = probe.connectedAgents?.() ?? 0;
    if (probe.eventLoopDelayMs) {
      delayMs = probe.eventLoopDelayMs();
      if (delayMs > settings.busyDelayMs) load = Math.max(MIN_LOAD, load / 2);
      else if (delayMs < settings.calmDelayMs) load = Math.min(1, load + LOAD_STEP);
    }
  }

  function fleet(): number {
    return Math.max(known, connected + waiting);
  }

  function dropOldAdmissions(at: number): void {
    const oldest = Math.floor(at / 1_000) - HERD_WINDOWS * spread + 1;
    for (const [s, count] of admittedBySecond) {
      if (s >= oldest) continue;
      admittedRecently -= count;
      admittedBySecond.delete(s);
    }
  }

  function countAdmission(at: number): void {
    if (spread <= 0) return;
    const second = Math.floor(at / 1_000);
    admittedBySecond.set(second, (admittedBySecond.get(second) ?? 0) + 1);
    admittedRecently++;
  }

  function herd(): number {
    return admittedRecently + waiting;
  }

  function rate(at: number): number {
    measure(at);
    dropDueSlots(at);
    dropOldAdmissions(at);
    const share = fleet() * settings.fleetFraction;
    const paced = spread > 0 ? Math.min(share, herd() / spread) : share;
    return Math.max(settings.minPerSecond, Math.ceil(paced * load));
  }

  return {
    admit(agentId) {
      const at = now();
      const perSecond = rate(at);
      recent.drop(at);
      releaseSlot(agentId);
      if (recent.size < perSecond) {
        recent.push(at);
        countAdmission(at);
        return { admitted: true };
      }
      refused++;
      // The first second ahead that still has room at the current rate; when the rate has grown
      // since earlier refusals, seconds they filled have room again, so a growing herd is handed
      // nearer seconds instead of queueing behind slots sized for a smaller one.
      const second = Math.floor(at / 1_000);
      let retryAfterSeconds = settings.maxRetryAfterSeconds;
      for (let ahead = 1; ahead < settings.maxRetryAfterSeconds; ahead++) {
        if ((slotsBySecond.get(second + ahead)?.count ?? 0) < perSecond) {
          retryAfterSeconds = ahead;
          break;
        }
      }
      // The agent waits for a session until the second it was handed.
      holdSlot(second + retryAfterSeconds, agentId);
      return { admitted: false, retryAfterSeconds, ratePerSecond: perSecond };
    },
    ratePerSecond: () => rate(now()),
    state() {
      const perSecond = rate(now());
      return { ratePerSecond: perSecond, fleet: fleet(), herd: herd(), waiting, load, eventLoopDelayMs: delayMs };
    },
    takeRefusedCount() {
      const count = refused;
      refused = 0;
      return count;
    },
    welcomeDelayMs() {
      const at = now();
      if (settings.welcomeMaxWaitMs <= 0) return 0;
      welcomes.drop(at);
      const perSecond = rate(at);
      // First come, first welcomed: never before the last reserved moment. The moments never
      // decrease, so when the window is full the one `perSecond` back bounds the next: a second
      // after it, the window holds fewer than the rate again.
      const last = welcomes.latest() ?? at;
      const bound = welcomes.latest(perSecond);
      const earliest = bound === undefined ? last : Math.max(last, bound + WINDOW_MS);
      const moment = Math.min(Math.max(at, earliest), at + settings.welcomeMaxWaitMs);
      welcomes.push(moment);
      return moment - at;
    },
  };
}
