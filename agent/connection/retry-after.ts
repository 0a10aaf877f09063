/**
 * A controller that paces reconnects (503, or 429, with Retry-After) says when to come back. The
 * agent waits that long plus a fresh jitter, and does not count it as a failed attempt: its
 * exponential backoff is for a controller that is down, not for one that is queueing it.
 */

/** Retry-After as delta-seconds or an HTTP-date, in ms from `now`; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return null;
  const text = raw.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1_000;
  const at = Date.parse(text);
  if (!/[a-z]/i.test(text) || Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}

/**
 * The wait before redialing after a Retry-After: at least what the controller asked, plus a
 * jitter within the following second (Retry-After counts whole seconds, and the controller hands
 * each refused agent its own second), so agents given the same second spread across it; never
 * beyond `capMs`.
 */
export function retryAfterDelay(retryAfterMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.min(capMs, retryAfterMs + Math.floor(random() * 1_000));
}
