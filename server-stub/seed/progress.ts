/**
 * Transfer rate and ETA from committed-offset samples. Until a few half-lives of history exist
 * the rate is the plain average since the (re)start, so a short seed does not show a rate still
 * climbing from zero; after that it is exponentially weighted, so it follows a changing link.
 */
export class RateMeter {
  private startAt = 0;
  private startBytes = 0;
  private lastAt = 0;
  private lastBytes = 0;
  private rate: number | null = null;

  constructor(private readonly halfLifeMs = 3_000) {}

  /** Feed the bytes done so far; returns the smoothed bytes/s. */
  sample(bytesDone: number, at = performance.now()): number | null {
    if (this.startAt === 0) {
      this.startAt = this.lastAt = at;
      this.startBytes = this.lastBytes = bytesDone;
      return this.rate;
    }
    const dt = at - this.lastAt;
    if (dt < 200) return this.rate;
    const elapsed = at - this.startAt;
    if (elapsed < 2 * this.halfLifeMs) {
      this.rate = (Math.max(0, bytesDone - this.startBytes) * 1000) / elapsed;
    } else {
      const instant = (Math.max(0, bytesDone - this.lastBytes) * 1000) / dt;
      const alpha = 1 - Math.pow(0.5, dt / this.halfLifeMs);
      this.rate = this.rate === null ? instant : this.rate + alpha * (instant - this.rate);
    }
    this.lastAt = at;
    this.lastBytes = bytesDone;
    return this.rate;
  }

  /** Restart after a pause (a reconnect) without counting the pause as zero throughput. */
  reset(bytesDone: number): void {
    this.startAt = 0;
    this.lastAt = 0;
    this.startBytes = this.lastBytes = bytesDone;
  }

  get value(): number | null {
    return this.rate;
  }
}

export function estimateEta(bytesTotal: number | null, bytesDone: number, rate: number | null): number | null {
  if (bytesTotal === null || rate === null || rate <= 0) return null;
  return Math.max(0, Math.round((bytesTotal - bytesDone) / rate));
}
