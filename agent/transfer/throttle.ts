/** A bandwidth cap for a seed's sender: paces chunks so the average stays at `bytesPerSec`. */
import { setTimeout as delay } from 'node:timers/promises';

export class RateLimiter {
  private readonly startedAt = performance.now();
  private bytes = 0;

  constructor(private readonly bytesPerSec: number) {}

  /** Resolves when `n` more bytes may go out without exceeding the cap. */
  async take(n: number, signal: AbortSignal): Promise<void> {
    this.bytes += n;
    const dueAt = this.startedAt + (this.bytes / this.bytesPerSec) * 1000;
    const wait = dueAt - performance.now();
    if (wait > 0) await delay(wait, undefined, { signal });
  }
}
