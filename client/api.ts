/**
 * The one typed client of the controller's HTTP API (README "HTTP API"), over fetch. The CLI,
 * the tests, `make demo` and `make bench` all call the controller through it. Shapes are the
 * controller's own view types, imported type-only, so a client cannot drift from the server.
 * Every failure is an ApiError: the API's `{error:{code,message}}` and the HTTP status, or
 * SEEDWIRE_UNREACHABLE with status 0 when there was no answer.
 */
import type { Facts } from '../shared/frames.js';
import type { AgentDetailView, AgentView, PeerView } from '../server-stub/api/views.js';
import type { BusEvent, EventType } from '../server-stub/events/types.js';
import type { Operation, OperationState } from '../server-stub/ops/types.js';
import type { Compression, SeedMethodName as SeedMethod, SeedState, SeedView, StageView } from '../server-stub/seed/types.js';
import type { AuditEntry } from '../server-stub/types.js';
import { ApiError, readApiError } from './error.js';
import { SseParser } from './sse.js';

export { ApiError } from './error.js';
export type { AgentDetailView, AgentView, AuditEntry, BusEvent, Compression, EventType, Facts, Operation, OperationState, PeerView, SeedMethod, SeedState, SeedView, StageView };

export interface ApiClientOptions {
  /** http(s)://host:port of the controller (a trailing slash is fine). */
  baseUrl: string;
  /** The admin bearer token. */
  token: string;
}

export interface CreateSeedRequest {
  source: string;
  target: string;
  method?: SeedMethod;
  compression?: Compression | 'auto';
  startTarget?: boolean;
  /** Bandwidth cap in bytes per second (≥ 65536). */
  maxBytesPerSec?: number;
  /** Parallel transfer lanes; the controller chooses when absent. */
  lanes?: number;
}

export interface RunOpOptions {
  /**
   * Seconds the controller waits for the end before answering; 0 answers at once (202, the
   * operation still running).
   * @default 60
   */
  wait?: number;
  signal?: AbortSignal;
}

export interface FollowOptions {
  signal?: AbortSignal;
}

export interface EventsOptions extends FollowOptions {
  /** Resume after this sequence number (sent as Last-Event-ID). */
  lastEventId?: number;
}

/** An answer as it came, for callers that look at statuses themselves (tests). */
export interface RawAnswer {
  status: number;
  body: unknown;
}

const enc = encodeURIComponent;

export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string;

  constructor(options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
  }

  // ---- agents --------------------------------------------------------------------------------

  async agents(options: FollowOptions = {}): Promise<AgentView[]> {
    return expectArray<AgentView>(await this.json('GET', '/api/agents', undefined, options.signal), 'GET /api/agents');
  }

  async agent(id: string, options: FollowOptions = {}): Promise<AgentDetailView> {
    return expectRecord<AgentDetailView>(await this.json('GET', `/api/agents/${enc(id)}`, undefined, options.signal), 'id', `GET /api/agents/${id}`);
  }

  // ---- operations ----------------------------------------------------------------------------

  /** Runs an operation; resolves with it ended, or still running when `wait` ran out (or was 0). */
  async runOp(agentId: string, op: string, params: Record<string, unknown> = {}, options: RunOpOptions = {}): Promise<Operation> {
    const path = `/api/agents/${enc(agentId)}/ops/${enc(op)}?wait=${options.wait ?? 60}`;
    return unwrap<Operation>(await this.json('POST', path, { params }, options.signal), 'operation', `POST ${path}`);
  }

  /** Newest first; with `seed`, that seed's agent-side steps in the order they ran. */
  async operations(filter: { agent?: string; seed?: string; limit?: number } = {}, options: FollowOptions = {}): Promise<Operation[]> {
    const query = new URLSearchParams();
    if (filter.agent !== undefined) query.set('agent', filter.agent);
    if (filter.seed !== undefined) query.set('seed', filter.seed);
    if (filter.limit !== undefined) query.set('limit', String(filter.limit));
    const path = `/api/operations${query.size > 0 ? `?${query.toString()}` : ''}`;
    return expectArray<Operation>(await this.json('GET', path, undefined, options.signal), `GET ${path}`);
  }

  async operation(id: string, options: FollowOptions = {}): Promise<Operation> {
    return expectRecord<Operation>(await this.json('GET', `/api/operations/${enc(id)}`, undefined, options.signal), 'id', `GET /api/operations/${id}`);
  }

  /** The output stored so far, as text. */
  async outputText(id: string, options: FollowOptions = {}): Promise<string> {
    return (await this.send('GET', `/api/operations/${enc(id)}/output?follow=0`, undefined, options.signal)).text();
  }

  /** The output, live: chunks as the agent sends them, ending when the operation ends. */
  async *output(id: string, options: FollowOptions = {}): AsyncGenerator<string> {
    const response = await this.send('GET', `/api/operations/${enc(id)}/output`, undefined, options.signal);
    yield* readText(response, options.signal);
  }

  async cancel(id: string, options: FollowOptions = {}): Promise<Operation> {
    const path = `/api/operations/${enc(id)}/cancel`;
    return unwrap<Operation>(await this.json('POST', path, undefined, options.signal), 'operation', `POST ${path}`);
  }

  // ---- seeds ---------------------------------------------------------------------------------

  /** Starts a seed (202); a failed precheck throws an ApiError with status 409 and the reason. */
  async createSeed(request: CreateSeedRequest, options: FollowOptions = {}): Promise<SeedView> {
    return unwrap<SeedView>(await this.json('POST', '/api/seeds', request, options.signal), 'seed', 'POST /api/seeds');
  }

  async seeds(filter: { limit?: number } = {}, options: FollowOptions = {}): Promise<SeedView[]> {
    const path = `/api/seeds${filter.limit === undefined ? '' : `?limit=${filter.limit}`}`;
    return expectArray<SeedView>(await this.json('GET', path, undefined, options.signal), `GET ${path}`);
  }

  async seed(id: string, options: FollowOptions = {}): Promise<SeedView> {
    return expectRecord<SeedView>(await this.json('GET', `/api/seeds/${enc(id)}`, undefined, options.signal), 'id', `GET /api/seeds/${id}`);
  }

  async abortSeed(id: string, options: FollowOptions = {}): Promise<SeedView> {
    const path = `/api/seeds/${enc(id)}/abort`;
    return unwrap<SeedView>(await this.json('POST', path, undefined, options.signal), 'seed', `POST ${path}`);
  }

  // ---- audit and events ----------------------------------------------------------------------

  /** Newest first. */
  async audit(filter: { limit?: number } = {}, options: FollowOptions = {}): Promise<AuditEntry[]> {
    const path = `/api/audit${filter.limit === undefined ? '' : `?limit=${filter.limit}`}`;
    return expectArray<AuditEntry>(await this.json('GET', path, undefined, options.signal), `GET ${path}`);
  }

  /** The live event feed, parsed; ends when the controller closes it or the signal aborts. */
  async *events(options: EventsOptions = {}): AsyncGenerator<BusEvent> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (options.lastEventId !== undefined) headers['last-event-id'] = String(options.lastEventId);
    const response = await this.send('GET', '/api/events', undefined, options.signal, headers);
    const parser = new SseParser();
    for await (const chunk of readText(response, options.signal)) {
      for (const message of parser.push(chunk)) {
        // One chunk often holds several events (an agent's event and its audit entry); a caller that
        // aborted on one of them must not be handed the rest.
        options.signal?.throwIfAborted();
        yield parseBusEvent(message.data);
      }
    }
  }

  // ---- plumbing ------------------------------------------------------------------------------

  /** Any call, answered as it came (status and parsed JSON, or text when not JSON); throws only when there is no answer. */
  async raw(method: string, path: string, body?: unknown): Promise<RawAnswer> {
    const response = await this.fetch(method, path, body);
    const text = await response.text();
    try {
      return { status: response.status, body: text === '' ? null : (JSON.parse(text) as unknown) };
    } catch {
      return { status: response.status, body: text };
    }
  }

  private async json(method: string, path: string, body: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    const response = await this.send(method, path, body, signal);
    const text = await response.text();
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new ApiError(response.status, 'SEEDWIRE_INTERNAL', `${method} ${path}: the answer is not JSON`, { cause: error });
    }
  }

  /** A successful response, or the ApiError its answer describes. */
  private async send(method: string, path: string, body: unknown, signal: AbortSignal | undefined, headers: Record<string, string> = {}): Promise<Response> {
    const response = await this.fetch(method, path, body, signal, headers);
    if (!response.ok) throw await readApiError(response, `${method} ${path}`);
    return response;
  }

  private async fetch(method: string, path: string, body: unknown, signal?: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ApiError(0, 'SEEDWIRE_UNREACHABLE', `cannot reach the controller at ${this.baseUrl}: ${describeCause(error)}`, { cause: error });
    }
  }
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  return new ApiClient(options);
}

// ---- answers -----------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function badAnswer(what: string, expected: string): ApiError {
  return new ApiError(200, 'SEEDWIRE_INTERNAL', `${what}: the answer is not ${expected}`);
}

function expectArray<T>(body: unknown, what: string): T[] {
  if (!Array.isArray(body)) throw badAnswer(what, 'a JSON array');
  return body as T[];
}

function expectRecord<T>(body: unknown, key: string, what: string): T {
  if (!isRecord(body) || typeof body[key] !== 'string') throw badAnswer(what, `an object with "${key}"`);
  return body as T;
}

/** `{"operation": {...}}` → the operation. */
function unwrap<T>(body: unknown, key: string, what: string): T {
  if (!isRecord(body)) throw badAnswer(what, `{"${key}": {...}}`);
  return expectRecord<T>(body[key], 'id', what);
}

function parseBusEvent(data: string): BusEvent {
  let event: unknown;
  try {
    event = JSON.parse(data);
  } catch (error) {
    throw new ApiError(200, 'SEEDWIRE_INTERNAL', 'GET /api/events: an event is not JSON', { cause: error });
  }
  if (!isRecord(event) || typeof event['seq'] !== 'number' || typeof event['type'] !== 'string') throw badAnswer('GET /api/events', 'an event {seq, type, at, data}');
  return event as unknown as BusEvent;
}

/** A response body as text chunks; the body is canceled when the consumer stops early. */
async function* readText(response: Response, signal: AbortSignal | undefined): AsyncGenerator<string> {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const next = await reader.read().catch((error: unknown) => {
        if (signal?.aborted) throw error;
        throw new ApiError(0, 'SEEDWIRE_UNREACHABLE', `the controller's stream broke off: ${describeCause(error)}`, { cause: error });
      });
      if (next.done) break;
      const text = decoder.decode(next.value, { stream: true });
      if (text) yield text;
    }
    const rest = decoder.decode();
    if (rest) yield rest;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** fetch's own errors say only "fetch failed"; the reason (ECONNREFUSED, ...) is in the cause. */
function describeCause(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}
