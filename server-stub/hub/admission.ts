/**
 * Admission pacing for agent upgrades. After a controller restart the whole fleet redials within
 * a few seconds; accepting them all at once spikes CPU, SQLite writes and resumed calls. At most
 * `rate` new sessions are admitted in any one-second window, where the rate scales with the
 * number of known agents (so a fleet of any size comes back in about 1/fleetFraction seconds).
 * The rest are answered 503 with a Retry-After that hands each refused agent its own future
 * second (a virtual queue), so they return spread out instead of all at once.
 */
import { CONTROLLER_LIMITS } from '../limits.js';

export interface AdmissionOptions {
  /** New sessions per second never go below this. @default 50 */
  minPerSecond: number;
  /** Share of the known fleet admitted per second. @default 0.05 (the fleet is back in about 20 s) */
  fleetFraction: number;
  /** Longest Retry-After handed out, in seconds. @default 30 */
  maxRetryAfterSeconds: number;
}

export const ADMISSION_DEFAULTS: AdmissionOptions = {
  minPerSecond: 50,
  fleetFraction: 0.05,
  maxRetryAfterSeconds: 30,
};

export type AdmissionDecision = { admitted: true } | { admitted: false; retryAfterSeconds: number; ratePerSecond: number };

export interface Admission {
  /** Decides on one authenticated upgrade; an admitted one counts against the current window. */
  admit(): AdmissionDecision;
  /** The current rate (new sessions per second). */
  ratePerSecond(): number;
  /** Refusals since the last call (for one summarised log line per interval). */
  takeRefusedCount(): number;
}

/** The rates are per second: this is the unit, not a tunable. */
const WINDOW_MS = 1_000;

export function createAdmission(knownAgents: () => number, options: Partial<AdmissionOptions> = {}, now: () => number = Date.now): Admission {
  const settings: AdmissionOptions = { ...ADMISSION_DEFAULTS, ...options };
  // Admission times in the last window, oldest first; never longer than the rate.
  const recent: number[] = [];
  let head = 0;
  // The next second the virtual queue can hand out, as a time in ms.
  let nextFreeSlot = 0;
  let fleetSize = 0;
  let fleetReadAt = -Infinity;
  let refused = 0;

  function rate(at: number): number {
    if (at - fleetReadAt >= CONTROLLER_LIMITS.fleetSizeTtlMs) {
      fleetSize = knownAgents();
      fleetReadAt = at;
    }
    return Math.max(settings.minPerSecond, Math.ceil(fleetSize * settings.fleetFraction));
  }

  function dropExpired(at: number): void {
    while (head < recent.length && at - recent[head]! >= WINDOW_MS) head++;
    if (head > 1024 && head * 2 > recent.length) {
      recent.splice(0, head);
      head = 0;
    }
  }

  return {
    admit() {
      const at = now();
      const perSecond = rate(at);
      dropExpired(at);
      if (recent.length - head < perSecond) {
        recent.push(at);
        return { admitted: true };
      }
      refused++;
      const slot = Math.max(nextFreeSlot, at);
      const horizon = at + settings.maxRetryAfterSeconds * 1_000;
      nextFreeSlot = Math.min(slot + WINDOW_MS / perSecond, horizon);
      const retryAfterSeconds = Math.min(settings.maxRetryAfterSeconds, Math.max(1, Math.ceil((slot - at) / 1_000)));
      return { admitted: false, retryAfterSeconds, ratePerSecond: perSecond };
    },
    ratePerSecond: () => rate(now()),
    takeRefusedCount() {
      const count = refused;
      refused = 0;
      return count;
    },
  };
}
