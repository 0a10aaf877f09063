/**
 * StreamRelay: binary data frames go from the route's `from` agent to its `to` agent untouched
 * (only the 24-byte header is read), credit frames go back. Credit bounds what the source may send,
 * and the relay refuses to hold more than one window (plus a frame) per stream.
 */
import type { Logger } from 'pino';
import { decodeDataHeader } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { CreditFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { HubCounters } from './counters.js';
import type { Sender } from './sender.js';
import type { StreamRelay } from './types.js';

interface CreditWaiter {
  atLeast: number;
  resolve: (limit: number) => void;
  reject: (error: Error) => void;
}

interface Route {
  from: string;
  to: string;
  limit: number;
  relayed: number;
  held: number;
  waiters: Set<CreditWaiter>;
}

export interface RelayEndpoint {
  /** The sender of the agent's current session, or null while it is offline. */
  senderOf(agentId: string): Sender | null;
}

export class Relay implements StreamRelay {
  private nextStream = 1;
  private readonly routes = new Map<number, Route>();
  /** Bytes relayed on streams already closed, so totals survive close(). */
  private closedBytes = new Map<number, number>();

  constructor(
    private readonly endpoint: RelayEndpoint,
    private readonly counters: HubCounters,
    private readonly log: Logger,
    private readonly maxHeldBytes: number = LIMITS.windowMaxBytes + LIMITS.maxMessageBytes,
  ) {}

  allocate(): number {
    const stream = this.nextStream;
    this.nextStream = this.nextStream >= 0xffffffff ? 1 : this.nextStream + 1;
    return stream;
  }

  open(stream: number, route: { from: string; to: string }): void {
    if (this.routes.has(stream)) throw new SeedwireError('SEEDWIRE_CONFLICT', `stream ${stream} is already open`);
    this.routes.set(stream, { ...route, limit: 0, relayed: 0, held: 0, waiters: new Set() });
    this.log.debug({ stream, ...route }, 'stream opened');
  }

  close(stream: number): void {
    const route = this.routes.get(stream);
    if (!route) return;
    this.routes.delete(stream);
    this.closedBytes.set(stream, route.relayed);
    if (this.closedBytes.size > 1000) this.closedBytes.delete(this.closedBytes.keys().next().value!);
    for (const waiter of route.waiters) waiter.reject(new SeedwireError('SEEDWIRE_CANCELED', `stream ${stream} closed`));
    route.waiters.clear();
  }

  creditLimit(stream: number): number {
    return this.routes.get(stream)?.limit ?? 0;
  }

  waitForCredit(stream: number, atLeast: number, signal?: AbortSignal): Promise<number> {
    const route = this.routes.get(stream);
    if (!route) return Promise.reject(new SeedwireError('SEEDWIRE_NOT_FOUND', `stream ${stream} is not open`));
    if (route.limit > atLeast) return Promise.resolve(route.limit);
    if (signal?.aborted) return Promise.reject(new SeedwireError('SEEDWIRE_CANCELED', 'wait for credit aborted'));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        route.waiters.delete(waiter);
        reject(new SeedwireError('SEEDWIRE_CANCELED', 'wait for credit aborted'));
      };
      const waiter: CreditWaiter = {
        atLeast,
        resolve: (limit) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(limit);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      route.waiters.add(waiter);
    });
  }

  bytesRelayed(stream: number): number {
    return this.routes.get(stream)?.relayed ?? this.closedBytes.get(stream) ?? 0;
  }

  /** A binary frame from `fromAgent`. Throws SeedwireError for a malformed header. */
  forwardData(fromAgent: string, buf: Buffer): void {
    const header = decodeDataHeader(buf);
    const route = this.routes.get(header.stream);
    if (!route || route.from !== fromAgent) {
      this.drop(header.stream, fromAgent, 'no route from this agent');
      return;
    }
    const sender = this.endpoint.senderOf(route.to);
    if (!sender) {
      this.drop(header.stream, fromAgent, 'target offline');
      return;
    }
    if (route.held + buf.length > this.maxHeldBytes) {
      this.drop(header.stream, fromAgent, 'sender exceeded its credit window');
      return;
    }
    route.held += buf.length;
    route.relayed += buf.length;
    this.counters.bytesRelayed += buf.length;
    sender.sendData({
      stream: header.stream,
      buf,
      done: () => {
        route.held -= buf.length;
      },
    });
  }

  /** A credit frame from `fromAgent` (the receiver); forwarded to the stream's sender. */
  forwardCredit(fromAgent: string, frame: CreditFrame): void {
    const route = this.routes.get(frame.stream);
    if (!route || route.to !== fromAgent) {
      this.log.debug({ stream: frame.stream, agentId: fromAgent }, 'credit for a stream not routed to this agent');
      return;
    }
    route.limit = frame.limit;
    for (const waiter of [...route.waiters]) {
      if (route.limit > waiter.atLeast) {
        route.waiters.delete(waiter);
        waiter.resolve(route.limit);
      }
    }
    this.endpoint.senderOf(route.from)?.sendFrame(frame);
  }

  /**
   * `agentId` (re)connected: it hears again the latest grant of every stream it sends on. A grant
   * forwarded while it was offline, or to a session that then dropped, is otherwise lost, and
   * its sender would wait forever (the agent keeps a grant that precedes its port; see
   * agent/transfer/credit.ts for how credit travels).
   */
  replayCredit(agentId: string): void {
    const sender = this.endpoint.senderOf(agentId);
    if (!sender) return;
    for (const [stream, route] of this.routes) {
      if (route.from === agentId && route.limit > 0) sender.sendFrame({ t: 'credit', stream, limit: route.limit });
    }
  }

  /** Closes every stream (idempotent). */
  dispose(): void {
    for (const stream of [...this.routes.keys()]) this.close(stream);
  }

  private drop(stream: number, agentId: string, why: string): void {
    this.counters.relayDropped++;
    this.log.debug({ stream, agentId, why }, 'data frame dropped');
  }
}
