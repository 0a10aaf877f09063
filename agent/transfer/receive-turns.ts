/**
 * One receive per lane at a time. The controller gives up on an attempt at once (a cancel, a
 * stream lost) and starts the next, while the agent's previous receive of that lane may still be
 * storing its resume point; the next one must read that point, not race it, and must not write
 * the same files at the same time. So a seed-receive waits for the previous one of its lane.
 */
import type { AgentConfig } from '../config/schema.js';

/** A receive stops within seconds of its cancel or link drop; longer means it is stuck elsewhere. */
const DEFAULT_MAX_WAIT_MS = 20_000;

export class ReceiveTurns {
  private readonly last = new Map<string, Promise<void>>();

  /**
   * Waits for the previous holder of `key`, at most `maxWaitMs` (a previous receive that does
   * not end by then is left to itself, as before turns existed: `onTimeout` says so); the
   * returned function ends this turn.
   */
  async take(key: string, signal: AbortSignal, maxWaitMs = DEFAULT_MAX_WAIT_MS, onTimeout?: () => void): Promise<() => void> {
    const previous = this.last.get(key) ?? Promise.resolve();
    let end!: () => void;
    const mine = new Promise<void>((resolve) => {
      end = resolve;
    });
    const chained = previous.then(() => mine);
    this.last.set(key, chained);
    const release = (): void => {
      end();
      // The last in line cleans up after itself, so the map holds only live turns.
      void chained.then(() => {
        if (this.last.get(key) === chained) this.last.delete(key);
      });
    };
    try {
      const waited = AbortSignal.timeout(maxWaitMs);
      await abortable(previous, AbortSignal.any([signal, waited])).catch((error: unknown) => {
        if (!waited.aborted || signal.aborted) throw error;
        onTimeout?.();
      });
    } catch (error) {
      release();
      throw error;
    }
    return release;
  }
}

function abortable(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

/** One set of turns per running agent (its config object), as the snapshot backends are kept. */
const turnsByAgent = new WeakMap<AgentConfig, ReceiveTurns>();

export function receiveTurnsOf(config: AgentConfig): ReceiveTurns {
  let turns = turnsByAgent.get(config);
  if (!turns) {
    turns = new ReceiveTurns();
    turnsByAgent.set(config, turns);
  }
  return turns;
}
