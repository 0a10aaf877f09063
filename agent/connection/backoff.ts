/**
 * Reconnect delays: capped exponential backoff with full jitter (a fresh random draw per attempt,
 * so a fleet that lost its controller at the same moment spreads out), retried forever. The
 * attempt counter resets only after a connection stayed healthy for `healthyMs`, so a controller
 * that accepts and then drops at once does not get hammered at the base delay.
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
  healthyMs: number;
  /** Uniform [0, 1); injected for tests. */
  random?: () => number;
}

export interface Backoff {
  /** The delay before the next dial; each call is one more attempt. */
  nextDelay(): number;
  /** Reports how long the last connection stayed up after its handshake (0 if it never did). */
  recordConnection(healthyForMs: number): void;
  readonly attempt: number;
}

/** Beyond this exponent base * 2^n overflows any sane cap anyway. */
const MAX_EXPONENT = 30;

export function createBackoff(options: BackoffOptions): Backoff {
  const random = options.random ?? Math.random;
  let attempt = 0;
  return {
    nextDelay(): number {
      const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(attempt, MAX_EXPONENT));
      attempt += 1;
      return Math.floor(random() * ceiling);
    },
    recordConnection(healthyForMs: number): void {
      if (healthyForMs >= options.healthyMs) attempt = 0;
    },
    get attempt() {
      return attempt;
    },
  };
}
