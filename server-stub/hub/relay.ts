/**
 * StreamRelay: binary data frames go from the route's `from` agent to its `to` agent untouched
 * (only the 24-byte header is read), credit frames go back. Credit bounds what the source may send,
 * and the relay refuses to hold more than one window (plus a frame) per stream.
 *
 * Two paths, chosen per stream when it opens: when both agents announced the data-connections
 * capability, the stream gets two one-time stream tokens and its bytes travel on the agents' data
 * connections (data-pipe.ts), so the control sockets carry none; otherwise (an older agent in a
 * mixed fleet) the bytes travel on the control sockets as before.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { decodeDataHeader } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { DataRole } from '../../shared/data-link.js';
import type { CreditFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { CONTROLLER_LIMITS } from '../limits.js';
import type { HubCounters } from './counters.js';
import { closeDataSocket, DATA_PIPE_DEFAULTS, DataPipe, type DataPipeOptions } from './data-pipe.js';
import type { Sender } from './sender.js';
import { StreamTokenRegistry, type DataClaim, type StreamTokens, type TokenVerdict } from './stream-tokens.js';
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
  /** The stream's data connections; null when it travels on the control sockets. */
  pipe: DataPipe | null;
}

export interface RelayEndpoint {
  /** The sender of the agent's current session, or null while it is offline. */
  senderOf(agentId: string): Sender | null;
  /** Whether the agent's current session announced the data-connections capability. */
  dialsDataConnections(agentId: string): boolean;
}

export interface RelayOptions {
  /** @default a full window plus one message */
  maxHeldBytes: number;
  /** @default CONTROLLER_LIMITS.streamTokenTtlMs */
  tokenTtlMs: number;
  pipe: DataPipeOptions;
}

export class Relay implements StreamRelay {
  private nextStream = 1;
  private readonly routes = new Map<number, Route>();
  /** Bytes relayed on streams already closed, so totals survive close(). */
  private closedBytes = new Map<number, number>();
  private readonly tokens: StreamTokenRegistry;
  private readonly maxHeldBytes: number;
  private readonly pipeOptions: DataPipeOptions;

  constructor(
    private readonly endpoint: RelayEndpoint,
    private readonly counters: HubCounters,
    private readonly log: Logger,
    options: Partial<RelayOptions> = {},
  ) {
    this.maxHeldBytes = options.maxHeldBytes ?? LIMITS.windowMaxBytes + LIMITS.maxMessageBytes;
    this.tokens = new StreamTokenRegistry(options.tokenTtlMs ?? CONTROLLER_LIMITS.streamTokenTtlMs);
    this.pipeOptions = { ...DATA_PIPE_DEFAULTS, maxHeldBytes: this.maxHeldBytes, ...options.pipe };
  }

  allocate(): number {
    const stream = this.nextStream;
    this.nextStream = this.nextStream >= 0xffffffff ? 1 : this.nextStream + 1;
    return stream;
  }

  open(stream: number, route: { from: string; to: string }): StreamTokens | null {
    if (this.routes.has(stream)) throw new SeedwireError('SEEDWIRE_CONFLICT', `stream ${stream} is already open`);
    const dataConnections = this.endpoint.dialsDataConnections(route.from) && this.endpoint.dialsDataConnections(route.to);
    const entry: Route = { ...route, limit: 0, relayed: 0, held: 0, waiters: new Set(), pipe: null };
    this.routes.set(stream, entry);
    this.log.debug({ stream, ...route, dataConnections }, 'stream opened');
    if (!dataConnections) return null;
    entry.pipe = new DataPipe(
      stream,
      {
        credit: (frame) => this.applyCredit(entry, frame),
        relayed: (bytes) => {
          entry.relayed += bytes;
          this.counters.bytesRelayed += bytes;
        },
        closed: (reason) => this.log.debug({ stream, reason }, 'data connections closed'),
      },
      this.log,
      this.pipeOptions,
    );
    return this.tokens.mint(stream, route);
  }

  /**
   * Checks a data connection's stream token against what it claims (before the upgrade); a match
   * uses the token up. Refusals say what was wrong, never the token.
   */
  admitData(token: string, claim: DataClaim): TokenVerdict {
    const verdict = this.tokens.claim(token, claim);
    if (verdict.ok && !this.routes.get(claim.stream)?.pipe) {
      return { ok: false, status: 401, code: 'SEEDWIRE_AUTH', message: `stream ${claim.stream} is not open for data connections`, unknown: false };
    }
    return verdict;
  }

  /** An upgraded data connection whose token admitData accepted: its socket after the 101, and the bytes that came with the request. */
  attachData(stream: number, role: DataRole, socket: Duplex, head: Buffer): void {
    const route = this.routes.get(stream);
    if (!route?.pipe) {
      closeDataSocket(socket, role, 1000, `stream ${stream} ended`, this.log);
      return;
    }
    this.counters.dataConnections++;
    route.pipe.attach(role, socket, head);
    // A grant that came before the sender connected is what it starts from.
    if (role === 'send' && route.limit > 0) route.pipe.sendCredit({ t: 'credit', stream, limit: route.limit });
  }

  close(stream: number): void {
    const route = this.routes.get(stream);
    if (!route) return;
    this.routes.delete(stream);
    this.tokens.revoke(stream);
    route.pipe?.close(`stream ${stream} ended`);
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
    if (route.pipe) {
      this.drop(header.stream, fromAgent, 'the stream travels on data connections');
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
    this.applyCredit(route, frame);
  }

  /** The receiver granted `frame.limit`: wake who waits for it and tell the sender, on the stream's path. */
  private applyCredit(route: Route, frame: CreditFrame): void {
    route.limit = frame.limit;
    for (const waiter of [...route.waiters]) {
      if (route.limit > waiter.atLeast) {
        route.waiters.delete(waiter);
        waiter.resolve(route.limit);
      }
    }
    if (route.pipe) route.pipe.sendCredit(frame);
    else this.endpoint.senderOf(route.from)?.sendFrame(frame);
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
      if (route.from === agentId && route.limit > 0 && !route.pipe) sender.sendFrame({ t: 'credit', stream, limit: route.limit });
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
