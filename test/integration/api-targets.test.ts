/**
 * The HTTP API users rely on, written once and run against two targets: one embedded controller
 * (SQLite in its data dir) and a cluster of three controllers on one PostgreSQL and one NATS
 * (test/helpers/cluster.ts), every request sent to controller 1 while the agents are held by
 * controllers 2 and 3. Where the cluster answers otherwise than the single controller, that is a
 * bug in the cluster, not a reason to loosen an assertion here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import type { Operation } from '../../server-stub/ops/types.js';
import { makeTempDir, startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { missingClusterTools, startCluster, type TestCluster } from '../helpers/cluster.js';
import { missingTools } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'api-targets-agent-token';
const ADMIN_TOKEN = 'api-targets-admin-token';
const AGENT_A = 'api-a.dc-1';
const AGENT_B = 'api-b.dc-1';

type Api = (method: string, path: string, body?: unknown, signal?: AbortSignal) => Promise<Response>;

/** What a test of the suite needs from a target. */
interface Target {
  /** Where the requests go (in the cluster: a controller holding none of the agents). */
  api: Api;
  /** Every controller's API (one for the embedded target). */
  everyApi: Api[];
  /** A new agent connecting to a controller other than the one asked (where there is one). */
  startOtherAgent(id: string): AgentProcess;
  stop(): Promise<void>;
}

interface TargetKind {
  name: string;
  skip: string | null;
  start(): Promise<Target>;
}

function call(url: string, token: string | null): Api {
  return (method, path, body, signal) =>
    fetch(`${url}${path}`, {
      method,
      headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    });
}

const embedded: TargetKind = {
  name: 'one embedded controller (SQLite)',
  skip: missingTools(['mkfifo']),
  async start() {
    const dataDir = mkdtempSync(join(tmpdir(), 'seedwire-api-embedded-'));
    const controller: Controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN });
    const agent = (id: string): AgentProcess => startAgent({ controllerUrl: controller.wsUrl, token: AGENT_TOKEN, id, config: { allowArbitraryCommands: true } });
    agent(AGENT_A);
    agent(AGENT_B);
    await waitFor(() => controller.deps.hub.isConnected(AGENT_A) && controller.deps.hub.isConnected(AGENT_B), { timeoutMs: 60_000, what: 'both agents connected' });
    const api = call(controller.url, ADMIN_TOKEN);
    return {
      api,
      everyApi: [api],
      startOtherAgent: agent,
      async stop() {
        await stopAllAgents();
        await controller.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
};

const cluster: TargetKind = {
  name: 'three controllers on PostgreSQL and NATS, asked on one holding none of the agents',
  skip: missingClusterTools() ?? missingTools(['mkfifo']),
  async start() {
    const c: TestCluster = await startCluster({ controllers: 3, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, clusterLimits: { reconnectWaitMs: 100 } });
    try {
      c.startAgent(AGENT_A, 3);
      c.startAgent(AGENT_B, 2);
      const hubOf = (n: number) => c.member(n).inProcess!.deps.hub;
      await waitFor(() => hubOf(3).isConnected(AGENT_A) && hubOf(2).isConnected(AGENT_B), { timeoutMs: 60_000, what: 'agent A on controller 3, agent B on controller 2' });
      await c.settled();
    } catch (error) {
      await c.stop();
      throw error;
    }
    return {
      api: c.member(1).api,
      everyApi: c.members.map((m) => m.api),
      startOtherAgent: (id) => c.startAgent(id, 2),
      async stop() {
        await c.stop();
        await stopAllAgents();
      },
    };
  },
};

async function json<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = await json<{ error: { code: string; message: string } }>(res);
  return { status: res.status, code: body.error.code, message: body.error.message };
}

/** Reads a streaming text body chunk by chunk; `until` resolves once the text so far matches. */
function readStream(res: Response): { text: () => string; until: (pred: (text: string) => boolean, what: string) => Promise<void>; ended: Promise<string> } {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const waiters = new Set<{ pred: (text: string) => boolean; resolve: () => void }>();
  const ended = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
      for (const waiter of [...waiters]) {
        if (!waiter.pred(text)) continue;
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  })().catch((error: unknown) => {
    if (error instanceof Error && error.name === 'AbortError') return text;
    throw error;
  });
  return {
    text: () => text,
    ended,
    until: (pred, what) =>
      pred(text)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(text.slice(-2000))}`)), 20_000);
            waiters.add({
              pred,
              resolve: () => {
                clearTimeout(timer);
                resolve();
              },
            });
          }),
  };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface AgentView {
  id: string;
  connected: boolean;
  hostname: string;
  version: string;
  identity?: { state: string };
}

describe.each([embedded, cluster])('the API on $name', (kind) => {
  let target: Target;
  const aborts: AbortController[] = [];

  beforeAll(async () => {
    if (kind.skip === null) target = await kind.start();
  }, 180_000);

  afterAll(async () => {
    for (const abort of aborts.splice(0)) abort.abort();
    await target?.stop();
  }, 60_000);

  const test = kind.skip === null ? it : it.skip;

  test('lists every agent, connected, on every controller', async () => {
    for (const api of target.everyApi) {
      const agents = await json<AgentView[]>(await api('GET', '/api/agents'));
      for (const id of [AGENT_A, AGENT_B]) expect(agents.find((a) => a.id === id), `${id} in ${JSON.stringify(agents)}`).toMatchObject({ id, connected: true, identity: { state: 'enrolled' } });
    }
  });

  test("shows an agent's detail: connected, its facts, its peers", async () => {
    await waitFor(async () => (await json<{ facts: unknown }>(await target.api('GET', `/api/agents/${encodeURIComponent(AGENT_A)}`))).facts !== null, { timeoutMs: 20_000, what: "agent A's facts" });
    const detail = await json<AgentView & { facts: { disks?: unknown } | null; clockSkewMs: number | null; peers: { local: Array<{ id: string; connected: boolean }>; remote: Array<{ id: string; connected: boolean }> } }>(
      await target.api('GET', `/api/agents/${encodeURIComponent(AGENT_A)}`),
    );
    expect(detail).toMatchObject({ id: AGENT_A, connected: true });
    expect(detail.facts).not.toBeNull();
    expect(typeof detail.clockSkewMs).toBe('number');
    expect([...detail.peers.local, ...detail.peers.remote]).toEqual(expect.arrayContaining([expect.objectContaining({ id: AGENT_B, connected: true })]));
  });

  test('refuses unknown agents and operations, naming them', async () => {
    expect(await errorOf(await target.api('GET', '/api/agents/no-such-agent'))).toMatchObject({ status: 404, code: 'SEEDWIRE_AGENT_UNKNOWN' });
    const op = await errorOf(await target.api('POST', '/api/agents/no-such-agent/ops/hostname?wait=5'));
    expect(op).toMatchObject({ status: 404, code: 'SEEDWIRE_AGENT_UNKNOWN' });
    expect(op.message).toContain('no-such-agent');
    expect(await errorOf(await target.api('GET', '/api/operations/no-such-op'))).toMatchObject({ status: 404, code: 'SEEDWIRE_NOT_FOUND' });
    expect(await errorOf(await target.api('GET', '/api/operations/no-such-op/output?follow=0'))).toMatchObject({ status: 404, code: 'SEEDWIRE_NOT_FOUND' });
    expect(await errorOf(await target.api('POST', '/api/operations/no-such-op/cancel'))).toMatchObject({ status: 404, code: 'SEEDWIRE_NOT_FOUND' });
    const badParams = await errorOf(await target.api('POST', `/api/agents/${encodeURIComponent(AGENT_A)}/ops/exec`, { params: { command: 42 } }));
    expect(badParams.status).toBe(400);
    expect(badParams.code).toBe('SEEDWIRE_BAD_PARAMS');
  });

  test('refuses requests without the admin token', async () => {
    const base = new URL((await target.api('GET', '/healthz')).url).origin;
    for (const path of ['/api/agents', '/api/operations', '/api/audit', '/api/events']) {
      const none = await call(base, null)('GET', path);
      expect(none.status, path).toBe(401);
      expect((await errorOf(none)).code).toBe('SEEDWIRE_AUTH');
      expect((await call(base, 'wrong-token')('GET', path)).status, path).toBe(401);
    }
    expect((await call(base, 'wrong-token')('POST', `/api/agents/${encodeURIComponent(AGENT_A)}/ops/hostname`)).status).toBe(401);
  });

  test('runs an operation with wait and returns its result', async () => {
    const res = await target.api('POST', `/api/agents/${encodeURIComponent(AGENT_A)}/ops/hostname?wait=30`);
    expect(res.status).toBe(200);
    const { operation } = await json<{ operation: Operation }>(res);
    expect(operation).toMatchObject({ agentId: AGENT_A, op: 'hostname', state: 'succeeded' });
    expect(typeof (operation.result as { hostname?: unknown }).hostname).toBe('string');
    // Its final row is stored before the answer: every controller shows it ended.
    for (const api of target.everyApi) expect((await json<Operation>(await api('GET', `/api/operations/${operation.id}`))).state).toBe('succeeded');
    // Nothing is left waiting for it: in the cluster, the requester's mirror of a routed operation
    // that came back ended in the holder's reply is over (no stream end awaited).
    const metrics = await (await target.api('GET', '/metrics')).text();
    for (const line of metrics.split('\n').filter((l) => l.startsWith('seedwire_cluster_routed_operations_running '))) expect(line).toBe('seedwire_cluster_routed_operations_running 0');
  });

  test("streams an operation's output live, then its exit code; lists it; keeps its output and audit rows", async () => {
    const fifo = join(makeTempDir('seedwire-api-fifo-'), 'gate');
    execFileSync('mkfifo', [fifo]);
    const res = await target.api('POST', `/api/agents/${encodeURIComponent(AGENT_A)}/ops/exec?wait=0`, { params: { command: `echo first; read word < ${fifo}; echo "second $word"; echo err-line >&2; exit 3` } });
    expect(res.status).toBe(202);
    const started = (await json<{ operation: Operation }>(res)).operation;
    expect(started).toMatchObject({ agentId: AGENT_A, op: 'exec', state: 'running' });
    const abort = new AbortController();
    aborts.push(abort);
    const follow = await target.api('GET', `/api/operations/${started.id}/output`, undefined, abort.signal);
    expect(follow.status).toBe(200);
    const stream = readStream(follow);
    // Live: the first line is there while the command still waits on the fifo.
    await stream.until((text) => text.includes('first\n'), 'the first line before the command ends');
    expect(await json<Operation>(await target.api('GET', `/api/operations/${started.id}`))).toMatchObject({ id: started.id, state: 'running' });
    await writeFile(fifo, 'live\n');
    const text = await stream.ended;
    expect(text).toContain('first\nsecond live\n');
    expect(text).toContain('err-line\n');

    await waitFor(async () => (await json<Operation>(await target.api('GET', `/api/operations/${started.id}`))).state !== 'running', { timeoutMs: 20_000, what: 'the operation to end' });
    expect(await json<Operation>(await target.api('GET', `/api/operations/${started.id}`))).toMatchObject({ id: started.id, state: 'succeeded', exitCode: 3 });
    const stored = await (await target.api('GET', `/api/operations/${started.id}/output?follow=0`)).text();
    expect(stored).toContain('second live\n');
    const listed = await json<Operation[]>(await target.api('GET', `/api/operations?agent=${encodeURIComponent(AGENT_A)}&limit=50`));
    expect(listed.find((o) => o.id === started.id)).toMatchObject({ state: 'succeeded', exitCode: 3 });

    await waitFor(
      async () => {
        const audit = await json<Array<{ action: string; outcome: string; agentId: string | null; params: { operationId?: string } | null }>>(await target.api('GET', '/api/audit?limit=200'));
        const rows = audit.filter((r) => r.agentId === AGENT_A && r.action === 'op:exec' && r.params?.operationId === started.id);
        return rows.some((r) => r.outcome === 'started') && rows.some((r) => r.outcome === 'succeeded');
      },
      { timeoutMs: 20_000, what: "the operation's audit rows, started and succeeded" },
    );
  }, 60_000);

  test('cancels a running operation: it ends canceled and its process is gone', async () => {
    const res = await target.api('POST', `/api/agents/${encodeURIComponent(AGENT_A)}/ops/exec?wait=0`, { params: { command: 'sleep 300 & echo "pid=$!"; wait' } });
    expect(res.status).toBe(202);
    const started = (await json<{ operation: Operation }>(res)).operation;
    const abort = new AbortController();
    aborts.push(abort);
    const stream = readStream(await target.api('GET', `/api/operations/${started.id}/output`, undefined, abort.signal));
    await stream.until((text) => /pid=\d+\n/.test(text), 'the pid of the sleep');
    const pid = Number(/pid=(\d+)/.exec(stream.text())![1]);
    try {
      expect(pidAlive(pid)).toBe(true);
      const canceled = await target.api('POST', `/api/operations/${started.id}/cancel`);
      expect(canceled.status).toBe(200);
      expect((await json<{ operation: Operation }>(canceled)).operation).toMatchObject({ id: started.id, state: 'canceled' });
      await waitFor(() => !pidAlive(pid), { timeoutMs: 15_000, what: `process ${pid} gone after the cancel` });
      await stream.ended;
      expect(await json<Operation>(await target.api('GET', `/api/operations/${started.id}`))).toMatchObject({ state: 'canceled' });
      await waitFor(
        async () => (await json<Array<{ action: string; params: { operationId?: string } | null }>>(await target.api('GET', '/api/audit?limit=200'))).some((r) => r.action === 'cancel' && r.params?.operationId === started.id),
        { timeoutMs: 20_000, what: 'the cancel audit row' },
      );
    } finally {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 60_000);

  test("shows the fleet's events on SSE: operations and agents", async () => {
    const abort = new AbortController();
    aborts.push(abort);
    const sse = readStream(await target.api('GET', '/api/events', undefined, abort.signal));
    await sse.until((text) => text.startsWith('retry:'), 'the SSE greeting');
    const res = await target.api('POST', `/api/agents/${encodeURIComponent(AGENT_B)}/ops/hostname?wait=30`);
    const { operation } = await json<{ operation: Operation }>(res);
    await sse.until((text) => text.includes(`"id":"${operation.id}"`) && text.includes('"state":"succeeded"'), "the operation's end on SSE");
    const agent = target.startOtherAgent('api-sse.dc-2');
    await sse.until((text) => text.includes('event: agent') && text.includes('"id":"api-sse.dc-2"') && text.includes('"connected":true'), 'the new agent connecting, on SSE');
    await agent.stop();
    await sse.until((text) => /"id":"api-sse\.dc-2"[^\n]*"connected":false/.test(text), 'the agent disconnecting, on SSE');
    abort.abort();
  }, 60_000);

  test('an agent enrolled through one controller is known, enrolled and reachable on every controller', async () => {
    const id = 'api-enrolled.dc-3';
    target.startOtherAgent(id);
    for (const api of target.everyApi) {
      await waitFor(async () => (await json<AgentView[]>(await api('GET', '/api/agents'))).some((a) => a.id === id && a.connected), { timeoutMs: 30_000, what: `${id} listed connected` });
      const detail = await json<AgentView>(await api('GET', `/api/agents/${encodeURIComponent(id)}`));
      expect(detail).toMatchObject({ id, connected: true, identity: { state: 'enrolled' } });
      const ran = await api('POST', `/api/agents/${encodeURIComponent(id)}/ops/hostname?wait=30`);
      expect(ran.status).toBe(200);
      expect((await json<{ operation: Operation }>(ran)).operation.state).toBe('succeeded');
    }
  }, 90_000);

  test('revokes an agent (its session ends, it cannot come back) and readmits it', async () => {
    const id = 'api-revoked.dc-3';
    const agent = target.startOtherAgent(id);
    await waitFor(async () => (await json<AgentView[]>(await target.api('GET', '/api/agents'))).some((a) => a.id === id && a.connected), { timeoutMs: 30_000, what: `${id} connected` });
    const revoked = await target.api('POST', `/api/agents/${encodeURIComponent(id)}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await json<{ identity: { state: string } }>(revoked)).toMatchObject({ agentId: id, identity: { state: 'revoked' } });
    // The session ends wherever it is held, and the agent is refused from then on.
    await waitFor(async () => (await json<AgentView>(await target.api('GET', `/api/agents/${encodeURIComponent(id)}`))).connected === false, { timeoutMs: 20_000, what: `${id} disconnected after the revoke` });
    for (const api of target.everyApi) expect((await json<AgentView>(await api('GET', `/api/agents/${encodeURIComponent(id)}`))).identity).toMatchObject({ state: 'revoked' });
    const readmitted = await target.api('POST', `/api/agents/${encodeURIComponent(id)}/readmit`);
    expect(readmitted.status).toBe(200);
    expect(await json<{ identity: { state: string } }>(readmitted)).toMatchObject({ identity: { state: 'readmitted' } });
    expect((await target.api('POST', '/api/agents/no-such-agent/revoke')).status).toBe(404);
    await agent.kill();
  }, 60_000);
});
