/** Transfer rate and ETA from committed-offset samples (an exponentially weighted rate). */
export class RateMeter {
  private lastAt = 0;
  private lastBytes = 0;
  private rate: number | null = null;

  constructor(private readonly halfLifeMs = 3_000) {}

  /** Feed the bytes done so far; returns the smoothed bytes/s. */
  sample(bytesDone: number, at = performance.now()): number | null {
    if (this.lastAt === 0) {
      this.lastAt = at;
      this.lastBytes = bytesDone;
      return this.rate;
    }
    const dt = at - this.lastAt;
    if (dt < 200) return this.rate;
    const instant = (Math.max(0, bytesDone - this.lastBytes) * 1000) / dt;
    const alpha = 1 - Math.pow(0.5, dt / this.halfLifeMs);
    this.rate = this.rate === null ? instant : this.rate + alpha * (instant - this.rate);
    this.lastAt = at;
    this.lastBytes = bytesDone;
    return this.rate;
  }

  /** Restart after a pause (a reconnect) without counting the pause as zero throughput. */
  reset(bytesDone: number): void {
    this.lastAt = 0;
    this.lastBytes = bytesDone;
  }

  get value(): number | null {
    return this.rate;
  }
}

export function estimateEta(bytesTotal: number | null, bytesDone: number, rate: number | null): number | null {
  if (bytesTotal === null || rate === null || rate <= 0) return null;
  return Math.max(0, Math.round((bytesTotal - bytesDone) / rate));
}
