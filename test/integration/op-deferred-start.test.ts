/**
 * When an operation's rows are written (server-stub/ops/runner.ts, deferStart). On PostgreSQL a
 * read-only one goes to the agent first and, when it ends quickly, is recorded whole after its
 * reply; a slow one or one with output gets its row while it runs; anything else reaches the agent
 * only once its row and audit row are committed. On SQLite every operation's rows come first. The
 * controller in-process on port 0 (a real PostgreSQL from test/helpers/postgres.ts), a protocol
 * peer as agent.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import type { CallFrame } from '../../shared/frames.js';
import { TestPeer } from '../helpers/controller-peer.js';
import { missingPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'agent-deferred-token';
const ADMIN_TOKEN = 'admin-deferred-token';
const skip = missingPostgres();
let server: PostgresServer | null = null;
let databases = 0;
let controller: Controller;
let dataDir: string;
const peers: TestPeer[] = [];

beforeAll(async () => {
  if (!skip) server = await startPostgres();
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function startOn(store: 'postgres' | 'sqlite'): Promise<void> {
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-deferred-'));
  const url = store === 'postgres' ? await server!.createDatabase(`deferred_${process.pid}_${++databases}`) : null;
  controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, store: url });
}

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function connectPeer(agentId: string): Promise<TestPeer> {
  const p = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId });
  peers.push(p);
  await p.connect();
  return p;
}

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${controller.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

interface Row {
  id: string;
  state: string;
  result: unknown;
  outputTail: string;
}
interface AuditRow {
  action: string;
  outcome: string;
  params: { operationId?: string } | null;
}

const auditOf = async (id: string): Promise<string[]> =>
  (await api<AuditRow[]>('GET', '/api/audit?limit=100')).body
    .filter((a) => a.params?.operationId === id)
    .map((a) => `${a.action} ${a.outcome}`)
    .reverse();

describe('when an operation is recorded: SQLite', () => {
  it('writes a read-only operation\'s row and audit row before the agent gets its call', async () => {
    await startOn('sqlite');
    const p = await connectPeer('db-0');
    const op = api<{ operation: Row }>('POST', '/api/agents/db-0/ops/hostname?wait=30');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    expect((await api<Row>('GET', `/api/operations/${call.id}`)).body.state).toBe('running');
    expect(await auditOf(call.id)).toEqual(['op:hostname started']);
    p.send({ t: 'result', id: call.id, result: { hostname: 'db-0' }, exitCode: null, durationMs: 1 });
    expect((await op).body.operation.state).toBe('succeeded');
    expect(await auditOf(call.id)).toEqual(['op:hostname started', 'op:hostname succeeded']);
  });
});

describe.skipIf(skip !== null)('when an operation is recorded: PostgreSQL', () => {
  beforeEach(() => startOn('postgres'));

  it('a quick read-only operation: recorded whole after its reply, both audit rows in order, readable at once', async () => {
    const p = await connectPeer('db-1');
    const op = api<{ operation: Row }>('POST', '/api/agents/db-1/ops/hostname?wait=30');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'result', id: call.id, result: { hostname: 'db-1' }, exitCode: null, durationMs: 1 });
    const { status, body } = await op;
    expect(status).toBe(200);
    expect(body.operation).toMatchObject({ id: call.id, state: 'succeeded', result: { hostname: 'db-1' } });
    expect((await api<Row>('GET', `/api/operations/${call.id}`)).body).toMatchObject({ state: 'succeeded' });
    expect(await auditOf(call.id)).toEqual(['op:hostname started', 'op:hostname succeeded']);
  });

  it('a slow read-only operation gets its row while it runs, and its end after', async () => {
    const p = await connectPeer('db-2');
    const op = api<{ operation: Row }>('POST', '/api/agents/db-2/ops/mysql-du?wait=30');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    // The agent has not answered: the row appears once the deferral is over.
    await waitFor(async () => (await api<Row>('GET', `/api/operations/${call.id}`)).status === 200, { what: 'the running row' });
    expect((await api<Row>('GET', `/api/operations/${call.id}`)).body.state).toBe('running');
    expect(await auditOf(call.id)).toEqual(['op:mysql-du started']);
    p.send({ t: 'result', id: call.id, result: { bytes: 1 }, exitCode: null, durationMs: 1 });
    expect((await op).body.operation).toMatchObject({ state: 'succeeded' });
    expect(await auditOf(call.id)).toEqual(['op:mysql-du started', 'op:mysql-du succeeded']);
  });

  it("a read-only operation's output is stored behind its row, in order", async () => {
    const p = await connectPeer('db-3');
    const op = api<{ operation: Row }>('POST', '/api/agents/db-3/ops/facts?wait=30');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stderr', data: 'one\n' });
    p.send({ t: 'output', id: call.id, seq: 1, stream: 'stderr', data: 'two\n' });
    p.send({ t: 'result', id: call.id, result: null, exitCode: null, durationMs: 1 });
    await op;
    const text = await (await fetch(`${controller.url}/api/operations/${call.id}/output?follow=0`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    expect(text).toBe('one\ntwo\n');
  });

  it('an operation that changes the host reaches the agent only once its row and audit row are committed', async () => {
    const p = await connectPeer('db-4');
    const op = api<{ operation: Row }>('POST', '/api/agents/db-4/ops/exec?wait=30', { params: { command: 'true' } });
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    expect((await api<Row>('GET', `/api/operations/${call.id}`)).body.state).toBe('running');
    expect(await auditOf(call.id)).toEqual(['op:exec started']);
    p.send({ t: 'result', id: call.id, result: { exitCode: 0 }, exitCode: 0, durationMs: 1 });
    expect((await op).body.operation.state).toBe('succeeded');
  });
});
