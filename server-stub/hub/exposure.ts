/**
 * Bounded exposure of the agent endpoint to strangers:
 * - failed authentications are counted per source address in a fixed window; past the limit the
 *   address gets 429 with Retry-After until the window ends, even with a right token (so a weak
 *   enrollment token cannot be guessed faster than the limit allows), except for unguessable
 *   proofs (an enrolled credential, a verified client certificate), decided in the hub;
 * - refusals are logged as one summary line per interval, never one line per attempt, so a flood
 *   cannot fill the disk or bury other log lines.
 * The cap on connections still waiting for their hello lives in the hub (it owns the sessions).
 */
import type { Logger } from 'pino';
import { CONTROLLER_LIMITS } from '../limits.js';

export interface ExposureOptions {
  /** @default 10 failed authentications per address per window before 429. */
  authFailureLimit: number;
  /** @default 60_000 ms */
  authFailureWindowMs: number;
  /** @default 10_000 ms between summary lines about refused agent connections. */
  refusalLogIntervalMs: number;
  /** @default 256 upgraded connections that have not completed their hello (503 beyond). */
  maxPendingHandshakes: number;
}

export const EXPOSURE_DEFAULTS: Readonly<ExposureOptions> = {
  authFailureLimit: 10,
  authFailureWindowMs: 60_000,
  refusalLogIntervalMs: 10_000,
  maxPendingHandshakes: 256,
};

/** Addresses named in one summary line. */
const SUMMARY_TOP = 5;

export type RefusalKind = 'missing-token' | 'wrong-token' | 'revoked' | 'unknown-credential' | 'identity' | 'rate-limited' | 'too-many-pending';

interface Window {
  startedAt: number;
  failures: number;
}

export class ExposureGuard {
  private readonly windows = new Map<string, Window>();
  private counts = new Map<RefusalKind, number>();
  private byAddress = new Map<string, number>();
  private lastLoggedAt = -Infinity;
  private timer: NodeJS.Timeout | null = null;
  private disposed = false;

  constructor(
    readonly options: ExposureOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `address` may try again, or null when it is not limited. */
  retryAfterSeconds(address: string): number | null {
    const window = this.windows.get(address);
    if (!window) return null;
    const endsAt = window.startedAt + this.options.authFailureWindowMs;
    const now = this.now();
    if (now >= endsAt) {
      this.windows.delete(address);
      return null;
    }
    return window.failures >= this.options.authFailureLimit ? Math.max(1, Math.ceil((endsAt - now) / 1000)) : null;
  }

  /** A failed authentication at the upgrade (missing or wrong token, revoked): counts toward the limit. */
  recordFailure(address: string, kind: Exclude<RefusalKind, 'rate-limited' | 'too-many-pending' | 'identity' | 'unknown-credential'>): void {
    const now = this.now();
    let window = this.windows.get(address);
    if (!window || now >= window.startedAt + this.options.authFailureWindowMs) {
      this.windows.delete(address);
      if (this.windows.size >= CONTROLLER_LIMITS.exposureTrackedAddresses) this.prune(now);
      window = { startedAt: now, failures: 0 };
      this.windows.set(address, window);
    }
    window.failures += 1;
    this.noteRefusal(address, kind);
  }

  /** Any refusal, for the summary line only. */
  noteRefusal(address: string, kind: RefusalKind): void {
    if (this.disposed) return;
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    if (this.byAddress.size < CONTROLLER_LIMITS.exposureTrackedAddresses || this.byAddress.has(address)) this.byAddress.set(address, (this.byAddress.get(address) ?? 0) + 1);
    const sinceLast = this.now() - this.lastLoggedAt;
    // The first refusal after a quiet interval is logged at once (an operator fixing one agent sees
    // it without waiting); the rest of the interval is summed into one line at its end.
    if (sinceLast >= this.options.refusalLogIntervalMs && this.timer === null) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.flush();
    }, Math.max(0, this.options.refusalLogIntervalMs - sinceLast));
    this.timer.unref();
  }

  /** Logs what was refused since the last line (nothing when nothing was); idempotent dispose. */
  dispose(): void {
    if (this.disposed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flush();
    this.disposed = true;
    this.windows.clear();
  }

  private flush(): void {
    if (this.counts.size === 0) return;
    const refused = Object.fromEntries(this.counts);
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    const addresses = [...this.byAddress.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, SUMMARY_TOP)
      .map(([address, count]) => ({ address, count }));
    this.log.warn({ total, refused, addresses, distinctAddresses: this.byAddress.size, intervalMs: this.options.refusalLogIntervalMs }, 'agent connections refused');
    this.counts = new Map();
    this.byAddress = new Map();
    this.lastLoggedAt = this.now();
  }

  private prune(now: number): void {
    for (const [address, window] of this.windows) {
      if (now >= window.startedAt + this.options.authFailureWindowMs) this.windows.delete(address);
    }
    while (this.windows.size >= CONTROLLER_LIMITS.exposureTrackedAddresses) {
      const oldest = this.windows.keys().next().value;
      if (oldest === undefined) break;
      this.windows.delete(oldest);
    }
  }
}
