/**
 * Pushes facts: after each welcome, whenever they change (compared without collectedAt), and on
 * a slow backstop interval. Concurrent refreshes coalesce into one collection at a time.
 */
import type { Logger } from 'pino';
import { toSeedwireError } from '../../shared/errors.js';
import type { Facts } from '../../shared/frames.js';
import { AGENT_LIMITS } from '../limits.js';
import type { CollectFacts } from '../ops/types.js';
import type { SendFrame } from './output.js';

function factsKey(facts: Facts): string {
  const { collectedAt: _ignored, ...rest } = facts;
  return JSON.stringify(rest);
}

export class FactsPublisher {
  private lastSentKey: string | undefined;
  private inFlight: Promise<void> | undefined;
  private again = false;
  private forceNext = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly options: { collect: CollectFacts; send: SendFrame; log: Logger; intervalMs?: number }) {}

  start(): void {
    if (this.timer || this.abort.signal.aborted) return;
    this.timer = setInterval(() => this.refresh(), this.options.intervalMs ?? AGENT_LIMITS.factsRefreshMs);
    this.timer.unref();
  }

  /** A new session: send the facts whether or not they changed. */
  publishNow(): void {
    this.refresh(true);
  }

  refresh(force = false): void {
    if (this.abort.signal.aborted) return;
    if (force) this.forceNext = true;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.collectAndSend().finally(() => {
      this.inFlight = undefined;
      if (this.again) {
        this.again = false;
        this.refresh();
      }
    });
  }

  dispose(): void {
    this.abort.abort();
    clearInterval(this.timer);
  }

  private async collectAndSend(): Promise<void> {
    const force = this.forceNext;
    this.forceNext = false;
    try {
      const facts = await this.options.collect(this.abort.signal);
      const key = factsKey(facts);
      if (!force && key === this.lastSentKey) return;
      if (this.options.send({ t: 'facts', facts })) this.lastSentKey = key;
    } catch (error) {
      this.options.log.warn({ err: toSeedwireError(error) }, 'collecting facts failed');
    }
  }
}
