/**
 * The controller in-process on port 0, driven by a real `ws` client speaking the agent side of the
 * protocol, and by real HTTP requests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import type { CallFrame, CancelFrame, ErrorFrame, Frame, WelcomeFrame } from '../../shared/frames.js';
import { TestPeer } from '../helpers/controller-peer.js';

const AGENT_TOKEN = 'agent-secret-token';
const ADMIN_TOKEN = 'admin-secret-token';

let controller: Controller;
let dataDir: string;
const peers: TestPeer[] = [];
/** Credentials the peers were enrolled with, so a reconnecting peer presents its id's own. */
let credentials: Map<string, string>;

function peer(options: Partial<ConstructorParameters<typeof TestPeer>[0]> = {}): TestPeer {
  const p = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, credentials, ...options });
  peers.push(p);
  return p;
}

function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${controller.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

beforeEach(async () => {
  credentials = new Map();
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-hub-'));
  controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, agentTokens: { 'pinned-1': 'pinned-token' }, handshakeTimeoutMs: 500, heartbeatMs: 100, deadAfterMs: 600 });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('agent authentication', () => {
  it('refuses a wrong token with 401 before the upgrade', async () => {
    await expect(peer({ token: 'wrong' }).opened()).rejects.toMatchObject({ status: 401 });
    await expect(peer({ token: undefined }).opened()).rejects.toMatchObject({ status: 401 });
  });

  it('never reads a token from the URL', async () => {
    const p = new TestPeer({ url: `${controller.wsUrl}?token=${AGENT_TOKEN}&access_token=${AGENT_TOKEN}` });
    peers.push(p);
    await expect(p.opened()).rejects.toMatchObject({ status: 401 });
  });

  it('with a per-agent token, the hello must name that agent', async () => {
    const wrong = peer({ token: 'pinned-token', agentId: 'someone-else' });
    await wrong.opened();
    wrong.hello();
    const error = await wrong.next<ErrorFrame>((f) => f.t === 'error');
    expect(error.code).toBe('SEEDWIRE_AUTH');
    expect((await wrong.closed).code).toBe(1008);
    const right = peer({ token: 'pinned-token', agentId: 'pinned-1' });
    await right.connect();
  });
});

describe('handshake and sessions', () => {
  it('answers hello with welcome and lists the agent, connected then not', async () => {
    const p = peer({ agentId: 'db-1' });
    const welcome = await p.connect({ clock: Date.now() + 5000 });
    expect(welcome).toMatchObject({ t: 'welcome', v: 1, heartbeatMs: 100, deadAfterMs: 600 });
    expect((welcome as WelcomeFrame).sessionId).toBeTruthy();
    const agents = (await (await api('GET', '/api/agents')).json()) as Array<Record<string, unknown>>;
    expect(agents).toEqual([expect.objectContaining({ id: 'db-1', hostname: 'db-1.test', datacenter: 'dc1', connected: true, version: '0.0.0-test', capabilities: ['exec'] })]);
    const skew = (await controller.deps.hub.agent('db-1'))!.clockSkewMs!;
    expect(skew).toBeGreaterThan(4000);
    await p.close();
    await vi.waitFor(async () => {
      const after = (await (await api('GET', '/api/agents')).json()) as Array<Record<string, unknown>>;
      expect(after[0]).toMatchObject({ id: 'db-1', connected: false });
    }, { timeout: 15_000 });
  });

  it('closes with 4002 when no hello arrives in time, 4003 on a protocol version mismatch', async () => {
    const slow = peer();
    await slow.opened();
    expect((await slow.closed).code).toBe(4002);
    const old = peer();
    await old.opened();
    old.hello({ v: 99 });
    expect((await old.next<ErrorFrame>((f) => f.t === 'error')).code).toBe('SEEDWIRE_PROTOCOL_VERSION');
    expect((await old.closed).code).toBe(4003);
  });

  it('a newer connection supersedes the older one (4001) and takes its calls', async () => {
    const first = peer({ agentId: 'db-1' });
    await first.connect();
    const second = peer({ agentId: 'db-1' });
    await second.connect();
    expect((await first.closed).code).toBe(4001);
    const response = api('POST', '/api/agents/db-1/ops/hostname');
    const call = await second.next<CallFrame>((f) => f.t === 'call');
    second.send({ t: 'result', id: call.id, result: { hostname: 'h' }, durationMs: 1 });
    expect((await response).status).toBe(200);
    expect(controller.deps.hub.isConnected('db-1')).toBe(true);
  });

  it('terminates an agent that stays silent past deadAfterMs', async () => {
    const p = peer({ agentId: 'db-1', autoPong: false });
    await p.connect();
    const { code } = await p.closed;
    expect(code).toBe(1006);
    await vi.waitFor(() => expect(controller.deps.hub.isConnected('db-1')).toBe(false), { timeout: 15_000 });
  });
});

describe('operations through the API', () => {
  it('runs an op: output frames, then a result → 200 with result and outputTail', async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    const response = api('POST', '/api/agents/db-1/ops/exec', { params: { command: 'echo hi' } });
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    expect(call).toMatchObject({ op: 'exec', params: { command: 'echo hi' } });
    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'hi\n' });
    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'hi\n' }); // duplicate after a redelivery
    p.send({ t: 'output', id: call.id, seq: 1, stream: 'stderr', data: 'warn\n' });
    p.send({ t: 'result', id: call.id, result: { exitCode: 0 }, exitCode: 0, durationMs: 3 });
    const res = await response;
    expect(res.status).toBe(200);
    const { operation } = (await res.json()) as { operation: Record<string, unknown> };
    expect(operation).toMatchObject({ id: call.id, agentId: 'db-1', op: 'exec', state: 'succeeded', result: { exitCode: 0 }, exitCode: 0, outputTail: 'hi\nwarn\n', error: null });
    expect(await p.next((f) => f.t === 'ack')).toEqual({ t: 'ack', ids: [call.id] });
    const audit = (await (await api('GET', '/api/audit?limit=5')).json()) as Array<Record<string, unknown>>;
    expect(audit[0]).toMatchObject({ actor: 'admin', agentId: 'db-1', action: 'op:exec', outcome: 'succeeded' });
    const listed = (await (await api('GET', '/api/operations?agent=db-1')).json()) as Array<{ id: string }>;
    expect(listed.map((o) => o.id)).toEqual([call.id]);
  });

  it('acknowledges stored output to an agent that offers it, again for a frame sent twice, and marks what the agent lost where it lost it', async () => {
    const p = peer({ agentId: 'db-acks' });
    const welcome = await p.connect({ capabilities: ['exec', 'output-acks'] });
    expect(welcome).toMatchObject({ t: 'welcome', acksOutput: true, pingsAgents: true });
    const response = api('POST', '/api/agents/db-acks/ops/exec', { params: { command: 'talk' } });
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    const outputAck = (seq: number): Promise<Frame> => p.next((f) => f.t === 'ack' && (f.output ?? []).some((a) => a.id === call.id && a.seq === seq));
    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'first\n' });
    expect(await outputAck(0)).toEqual({ t: 'ack', ids: [], output: [{ id: call.id, seq: 0 }] });
    // Frame 1 never comes (the agent forgot it past its buffer); frame 2 says 5 bytes before it were dropped unsent.
    p.send({ t: 'output', id: call.id, seq: 2, stream: 'stdout', data: 'third\n', gap: 5 });
    await outputAck(2);
    // Sent again after a reconnect: not stored twice, acknowledged again up to what is stored.
    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'first\n' });
    await outputAck(2);
    p.send({ t: 'result', id: call.id, result: { exitCode: 0 }, exitCode: 0, durationMs: 3 });
    expect((await response).status).toBe(200);
    const stored = await (await api('GET', `/api/operations/${call.id}/output?follow=0`)).text();
    expect(stored).toBe('first\n\n[seedwire: 1 output frame lost]\n\n[seedwire: 5 bytes of output lost]\nthird\n');
  });

  it("fails an op whose result does not match the op's contract with SEEDWIRE_PROTOCOL naming the field", async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    const response = api('POST', '/api/agents/db-1/ops/mysql-status');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'result', id: call.id, result: { running: 'maybe' }, durationMs: 1 });
    const res = await response;
    const body = (await res.json()) as { operation: { state: string; error: { code: string; message: string } } };
    expect(body.operation.state).toBe('failed');
    expect(body.operation.error).toMatchObject({ code: 'SEEDWIRE_PROTOCOL', message: expect.stringContaining("answered 'mysql-status' with a bad result at running") });
  });

  it('maps an agent error frame to a failed operation with its code and exit code', async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    const response = api('POST', '/api/agents/db-1/ops/custom-command', { params: { name: 'flush' } });
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'error', id: call.id, code: 'SEEDWIRE_COMMAND_FAILED', message: 'exit 3', exitCode: 3 });
    const { operation } = (await (await response).json()) as { operation: Record<string, unknown> };
    expect(operation).toMatchObject({ state: 'failed', exitCode: 3, error: { code: 'SEEDWIRE_COMMAND_FAILED', message: 'exit 3' } });
  });

  it('?wait=0 answers 202; the output endpoint streams live; cancel sends a cancel frame', async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    const started = await api('POST', '/api/agents/db-1/ops/exec?wait=0', { params: { command: 'sleep 100' } });
    expect(started.status).toBe(202);
    const { operation } = (await started.json()) as { operation: { id: string; state: string } };
    expect(operation.state).toBe('running');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    expect(call.id).toBe(operation.id);
    expect(((await (await api('GET', `/api/operations/${operation.id}`)).json()) as { state: string }).state).toBe('running');

    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'first\n' });
    await vi.waitFor(async () => expect((await controller.deps.operations.get(call.id))!.outputTail).toBe('first\n'), { timeout: 15_000 });
    const live = await api('GET', `/api/operations/${operation.id}/output`);
    expect(live.headers.get('content-type')).toMatch(/^text\/plain/);
    const reader = live.body!.getReader();
    const decoder = new TextDecoder();
    let received = decoder.decode((await reader.read()).value);
    expect(received).toBe('first\n'); // before any result exists
    p.send({ t: 'output', id: call.id, seq: 1, stream: 'stdout', data: 'second\n' });
    while (!received.includes('second')) received += decoder.decode((await reader.read()).value);

    const canceled = await api('POST', `/api/operations/${operation.id}/cancel`);
    const cancel = await p.next<CancelFrame>((f) => f.t === 'cancel');
    expect(cancel.id).toBe(call.id);
    expect(((await canceled.json()) as { operation: { state: string } }).operation.state).toBe('canceled');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += decoder.decode(value);
    }
    expect(received).toBe('first\nsecond\n');
    expect(await (await api('GET', `/api/operations/${operation.id}/output?follow=0`)).text()).toBe('first\nsecond\n');
  });

  it('refuses unknown ops, internal seed ops, bad params, unknown and offline agents with registry codes', async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    const check = async (path: string, body: unknown, status: number, code: string, message?: RegExp) => {
      const res = await api('POST', path, body);
      expect(res.status).toBe(status);
      const json = (await res.json()) as { error: { code: string; message: string } };
      expect(json.error.code).toBe(code);
      if (message) expect(json.error.message).toMatch(message);
    };
    await check('/api/agents/db-1/ops/nope', {}, 404, 'SEEDWIRE_OP_UNKNOWN');
    await check('/api/agents/db-1/ops/seed-send', { params: {} }, 404, 'SEEDWIRE_OP_UNKNOWN');
    await check('/api/agents/db-1/ops/mount-snapshot', { params: {} }, 400, 'SEEDWIRE_BAD_PARAMS', /params\.name/);
    await check('/api/agents/db-1/ops/hostname', { params: { extra: 1 } }, 400, 'SEEDWIRE_BAD_PARAMS', /extra/);
    await check('/api/agents/ghost/ops/hostname', {}, 404, 'SEEDWIRE_AGENT_UNKNOWN');
    await p.close();
    await vi.waitFor(() => expect(controller.deps.hub.isConnected('db-1')).toBe(false), { timeout: 15_000 });
    await check('/api/agents/db-1/ops/hostname', {}, 409, 'SEEDWIRE_AGENT_OFFLINE');
    expect(p.frames.filter((f) => f.t === 'call')).toEqual([]);
    const big = await fetch(`${controller.url}/api/agents/db-1/ops/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ params: { command: 'x'.repeat(70 * 1024) } }),
    });
    expect(big.status).toBe(400);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('SEEDWIRE_BAD_REQUEST');
  });

  it('a malformed frame gets an error frame back and the session carries on', async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    p.sendRaw('{not json');
    expect(await p.next<ErrorFrame>((f) => f.t === 'error')).toMatchObject({ id: null, code: 'SEEDWIRE_BAD_FRAME' });
    p.sendRaw(JSON.stringify({ t: 'result', id: 'abc', durationMs: 'soon' }));
    expect(await p.next<ErrorFrame>((f) => f.t === 'error')).toMatchObject({ id: 'abc', code: 'SEEDWIRE_BAD_FRAME' });
    p.send({ t: 'result', id: 'unknown-call', result: 1, durationMs: 1 }); // logged and ignored
    const response = api('POST', '/api/agents/db-1/ops/hostname');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'result', id: call.id, result: { hostname: 'db-1' }, durationMs: 1 });
    const { operation } = (await (await response).json()) as { operation: Record<string, unknown> };
    expect(operation).toMatchObject({ state: 'succeeded', result: { hostname: 'db-1' } });
    const metrics = await (await api('GET', '/metrics')).text();
    expect(metrics).toMatch(/seedwire_bad_frames_total 2/);
    expect(metrics).toMatch(/seedwire_agents_connected 1/);
  });

  it('an oversized frame closes that connection with 1009; other agents keep being served', async () => {
    const big = peer({ agentId: 'big' });
    await big.connect();
    const other = peer({ agentId: 'other' });
    await other.connect();
    big.sendRaw('x'.repeat(3 * 1024 * 1024));
    expect((await big.closed).code).toBe(1009);
    const response = api('POST', '/api/agents/other/ops/hostname');
    const call = await other.next<CallFrame>((f) => f.t === 'call');
    other.send({ t: 'result', id: call.id, result: { hostname: 'other' }, durationMs: 1 });
    expect((await response).status).toBe(200);
  });

  it('a call survives a reconnect the agent reports it in; is lost when the agent does not', async () => {
    const p = peer({ agentId: 'db-1' });
    await p.connect();
    const response = api('POST', '/api/agents/db-1/ops/exec?wait=30', { params: { command: 'long' } });
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    await p.close();
    const back = peer({ agentId: 'db-1' });
    await back.connect({ running: [call.id] });
    back.send({ t: 'result', id: call.id, result: { exitCode: 0 }, exitCode: 0, durationMs: 5 });
    expect(((await (await response).json()) as { operation: { state: string } }).operation.state).toBe('succeeded');
    expect(back.frames.some((f) => f.t === 'call')).toBe(false); // resumed, not re-sent

    const second = api('POST', '/api/agents/db-1/ops/exec?wait=30', { params: { command: 'long' } });
    const call2 = await back.next<CallFrame>((f) => f.t === 'call');
    await back.close();
    const again = peer({ agentId: 'db-1' });
    await again.connect({ running: [], pending: [] });
    const { operation } = (await (await second).json()) as { operation: { id: string; state: string; error: { code: string } } };
    expect(operation).toMatchObject({ id: call2.id, state: 'failed', error: { code: 'SEEDWIRE_LOST' } });
  });

  it('facts frames update the agent detail with peers by datacenter', async () => {
    const a = peer({ agentId: 'db-1' });
    await a.connect();
    const b = peer({ agentId: 'db-2' });
    await b.connect();
    const c = peer({ agentId: 'db-3' });
    await c.connect({ datacenter: 'dc2' });
    const facts = {
      hostname: 'db-2.test', datacenter: 'dc1', mysqlConfigured: true, mysqlRunning: true, mysqlPort: 3306, datadir: '/var/lib/mysql',
      datadirBytes: 10, datadirFreeBytes: 100, incompleteSeed: null, snapshotBackend: 'btrfs' as const,
      snapshots: [{ name: 's1', path: '/s/s1', createdAt: null, sizeBytes: null, mounted: false }], mounted: null, backupTool: null,
      customCommands: [], collectedAt: new Date().toISOString(),
    };
    b.send({ t: 'facts', facts });
    await vi.waitFor(() => expect(controller.deps.hub.facts('db-2')).not.toBeNull(), { timeout: 15_000 });
    const detail = (await (await api('GET', '/api/agents/db-1')).json()) as Record<string, unknown>;
    expect(detail).toMatchObject({ id: 'db-1', connected: true, facts: null, peers: { local: [{ id: 'db-2', hasSnapshots: true, snapshotBackend: 'btrfs' }], remote: [{ id: 'db-3', hasSnapshots: false }] } });
    const two = (await (await api('GET', '/api/agents/db-2')).json()) as Record<string, unknown>;
    expect(two).toMatchObject({ facts: { mysqlRunning: true, datadir: '/var/lib/mysql', snapshotBackend: 'btrfs' } });
    expect((await api('GET', '/api/agents/ghost')).status).toBe(404);
  });
});
