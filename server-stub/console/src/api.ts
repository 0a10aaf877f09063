/**
 * The console's only way to the controller: same-origin fetch, authenticated by the HttpOnly
 * `seedwire_admin` cookie set at login. The console never holds the token itself.
 * A 401 from any call (except the login itself) hands control to `onUnauthorized`.
 */
import type { Agent, AuditEntry, Operation, Seed, ThroughputView } from './types.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** The request never reached the controller (down, restarting, network). */
  get isNetwork(): boolean {
    return this.status === 0;
  }
}

let unauthorizedHandler: () => void = () => {};

export function setUnauthorizedHandler(handler: () => void): void {
  unauthorizedHandler = handler;
}

interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** Whether a 401 means "session over, back to login" (false for the login call itself). */
  redirectOn401?: boolean;
}

export async function openRequest(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: options.body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: options.signal ?? null,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new ApiError(0, 'SEEDWIRE_NETWORK', 'the controller cannot be reached');
  }
  if (response.ok) return response;
  const error = await readError(response);
  if (response.status === 401 && options.redirectOn401 !== false) unauthorizedHandler();
  throw error;
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const response = await openRequest(method, path, options);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  if (text === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, 'SEEDWIRE_BAD_RESPONSE', `unexpected answer from ${path}`);
  }
}

async function readError(response: Response): Promise<ApiError> {
  let code = `HTTP_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // Not JSON (a proxy's page, a plain-text 503): keep the status line.
  }
  return new ApiError(response.status, code, message);
}

/** Accepts both a bare array and `{key: [...]}`. */
function asList<T>(body: unknown, key: string): T[] {
  if (Array.isArray(body)) return body as T[];
  const inner = (body as Record<string, unknown> | null)?.[key];
  return Array.isArray(inner) ? (inner as T[]) : [];
}

/** Accepts both a bare object and `{key: {...}}`. */
function asItem<T>(body: unknown, key: string): T {
  const record = body as Record<string, unknown> | null;
  if (record && typeof record === 'object' && !('id' in record) && record[key] && typeof record[key] === 'object') return record[key] as T;
  return body as T;
}

const enc = encodeURIComponent;

export const api = {
  login: (token: string) => request<void>('POST', '/api/login', { body: { token }, redirectOn401: false }),
  logout: () => request<void>('POST', '/api/logout', { redirectOn401: false }),

  agents: async (signal?: AbortSignal) => asList<Agent>(await request('GET', '/api/agents', { signal }), 'agents'),
  agent: async (id: string, signal?: AbortSignal) => asItem<Agent>(await request('GET', `/api/agents/${enc(id)}`, { signal }), 'agent'),
  /** Revokes the agent's credential (it is disconnected and cannot reconnect) / lets it enroll once more. */
  revokeAgent: (id: string) => request<{ agentId: string; identity: NonNullable<Agent['identity']> }>('POST', `/api/agents/${enc(id)}/revoke`),
  readmitAgent: (id: string) => request<{ agentId: string; identity: NonNullable<Agent['identity']> }>('POST', `/api/agents/${enc(id)}/readmit`),
  startOperation: async (agentId: string, op: string, params: Record<string, unknown> = {}) =>
    asItem<Operation>(await request('POST', `/api/agents/${enc(agentId)}/ops/${enc(op)}?wait=0`, { body: { params } }), 'operation'),

  operations: async (filter: { agent?: string; seed?: string; limit?: number }, signal?: AbortSignal) => {
    const query = new URLSearchParams();
    if (filter.agent !== undefined) query.set('agent', filter.agent);
    if (filter.seed !== undefined) query.set('seed', filter.seed);
    if (filter.limit !== undefined) query.set('limit', String(filter.limit));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return asList<Operation>(await request('GET', `/api/operations${suffix}`, { signal }), 'operations');
  },
  operation: async (id: string, signal?: AbortSignal) => asItem<Operation>(await request('GET', `/api/operations/${enc(id)}`, { signal }), 'operation'),
  /** The live output stream of an operation (text/plain, ends when the operation ends). */
  followOutput: (id: string, signal: AbortSignal) => openRequest('GET', `/api/operations/${enc(id)}/output`, { signal }),
  cancelOperation: (id: string) => request<unknown>('POST', `/api/operations/${enc(id)}/cancel`),

  seeds: async (signal?: AbortSignal) => asList<Seed>(await request('GET', '/api/seeds', { signal }), 'seeds'),
  seed: async (id: string, signal?: AbortSignal) => asItem<Seed>(await request('GET', `/api/seeds/${enc(id)}`, { signal }), 'seed'),
  createSeed: async (body: { source: string; target: string; method?: string; compression?: string; startTarget?: boolean; maxBytesPerSec?: number }) =>
    asItem<Pick<Seed, 'id' | 'state'>>(await request('POST', '/api/seeds', { body }), 'seed'),
  abortSeed: (id: string) => request<unknown>('POST', `/api/seeds/${enc(id)}/abort`),
  throughput: (id: string, signal?: AbortSignal) => request<ThroughputView>('GET', `/api/seeds/${enc(id)}/throughput`, { signal }),

  audit: async (limit: number, signal?: AbortSignal) => asList<AuditEntry>(await request('GET', `/api/audit?limit=${limit}`, { signal }), 'audit'),
};

export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.isNetwork ? err.message : `${err.message} (${err.code})`;
  return err instanceof Error ? err.message : String(err);
}
