/**
 * The cluster's failures, on real engines: three controller processes on one PostgreSQL and one
 * nats-server (test/helpers/cluster.ts), a real agent on each, with the three controllers in its
 * list. PostgreSQL restarted while idle; nats-server restarted while a routed operation runs; a
 * controller SIGKILLed. Each time the cluster recovers by itself: no hang, no audit row lost,
 * agents back on the surviving controllers, operations routed to their new holder.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Operation } from '../../server-stub/ops/types.js';
import { makeTempDir, stopAllAgents } from '../helpers/agent.js';
import { missingClusterTools, startCluster, type TestCluster } from '../helpers/cluster.js';
import { stopAllControllers } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'cluster-failures-agent-token';
const ADMIN_TOKEN = 'cluster-failures-admin-token';
const AGENTS = ['fail-1', 'fail-2', 'fail-3'] as const;
const skip = missingClusterTools() ?? missingTools(['mkfifo']);

let cluster: TestCluster;

interface AgentView {
  id: string;
  connected: boolean;
  holder?: string | null;
}

interface AuditRow {
  id: number;
  action: string;
  outcome: string;
  agentId: string | null;
  params: { operationId?: string } | null;
}

async function json<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

async function hostname(n: number, agentId: string): Promise<Operation> {
  const res = await cluster.member(n).api('POST', `/api/agents/${encodeURIComponent(agentId)}/ops/hostname?wait=30`);
  expect(res.status, `hostname on ${agentId} through controller ${n}: ${await res.clone().text()}`).toBe(200);
  const { operation } = await json<{ operation: Operation }>(res);
  expect(operation.state).toBe('succeeded');
  return operation;
}

async function auditIds(): Promise<number[]> {
  return (await cluster.query<{ id: number }>('SELECT id FROM audit ORDER BY id')).map((r) => Number(r.id));
}

async function auditOf(operationId: string): Promise<AuditRow[]> {
  const rows = await json<AuditRow[]>(await cluster.member(1).api('GET', '/api/audit?limit=1000'));
  return rows.filter((r) => r.params?.operationId === operationId);
}

/** Every agent listed connected on every live controller, held by a live one. */
async function everyAgentListed(): Promise<boolean> {
  const live = cluster.members.filter((m) => m.alive).map((m) => m.url);
  for (const member of cluster.members) {
    if (!member.alive) continue;
    const res = await member.api('GET', '/api/agents').catch(() => null);
    if (res?.status !== 200) return false;
    const agents = await json<AgentView[]>(res);
    for (const id of AGENTS) {
      const agent = agents.find((a) => a.id === id);
      if (!agent?.connected || !live.includes(agent.holder ?? '')) return false;
    }
  }
  return true;
}

describe.skipIf(skip !== null)('the cluster through its failures', () => {
  beforeAll(async () => {
    cluster = await startCluster({ controllers: 3, processes: [1, 2, 3], adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN });
    AGENTS.forEach((id, i) => cluster.startAgent(id, i + 1));
    await cluster.settled();
    await waitFor(async () => (await cluster.member(1).holds('fail-1')) && (await cluster.member(2).holds('fail-2')) && (await cluster.member(3).holds('fail-3')), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'agent n held by controller n',
    });
    await waitFor(everyAgentListed, { timeoutMs: 30_000, intervalMs: 200, what: 'every agent listed on every controller' });
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
    await stopAllAgents();
    await stopAllControllers();
  }, 60_000);

  it('recovers from a PostgreSQL restart while idle: the next API calls work, agents stay connected, no audit row is lost', async () => {
    for (const n of [1, 2, 3]) {
      // Controller n asks for agent n % 3 + 1, held by controller n % 3 + 1: routed.
      const routed = await hostname(n, AGENTS[(n % 3) as 0 | 1 | 2]);
      const requester = cluster.member(n).process!;
      const holder = cluster.member((n % 3) + 1).process!;
      const requesterId = requester.logs.find((r) => typeof r['controllerId'] === 'string')?.['controllerId'];
      expect(requesterId).toEqual(expect.any(String));
      // A quick read-only operation is recorded whole: the holder logs it once, at its end, naming
      // who asked; the requester logs nothing at info.
      const ended = await holder.waitForLog((r) => r.msg === 'operation ended' && r['opId'] === routed.id, 10_000);
      expect(ended).toMatchObject({ requester: requesterId, actor: 'admin', op: 'hostname', state: 'succeeded' });
      expect(holder.logs.filter((r) => r['opId'] === routed.id).map((r) => r.msg)).toEqual(['operation ended']);
      expect(requester.logs.filter((r) => r['opId'] === routed.id)).toEqual([]);
    }
    const before = await auditIds();
    expect(before.length).toBeGreaterThan(0);

    await cluster.postgres.restart();

    // The first call after the restart on each controller: its pool replaces the broken connections.
    const after: Operation[] = [];
    for (const n of [1, 2, 3]) {
      const listed = await cluster.member(n).api('GET', '/api/agents');
      expect(listed.status, `GET /api/agents on controller ${n} after the restart: ${await listed.clone().text()}`).toBe(200);
      after.push(await hostname(n, AGENTS[(n + 1) % 3]!));
    }
    expect(await everyAgentListed()).toBe(true);
    for (const member of cluster.members) expect(member.alive).toBe(true);
    const ids = await auditIds();
    expect(ids).toEqual(expect.arrayContaining(before));
    for (const operation of after) {
      const rows = await auditOf(operation.id);
      expect(rows.map((r) => r.outcome).sort()).toEqual(['started', 'succeeded']);
    }
  }, 120_000);

  it('ends a routed operation with its real outcome or a clear error when nats-server restarts under it, and routes again after', async () => {
    const dir = makeTempDir('seedwire-failures-');
    const fifo = join(dir, 'gate');
    const marker = join(dir, 'started');
    execFileSync('mkfifo', [fifo]);
    // Controller 1 routes it to controller 3, which holds fail-3.
    const waited = cluster.member(1).api('POST', `/api/agents/fail-3/ops/exec?wait=120`, { params: { command: `echo first; touch ${marker}; read word < ${fifo}; echo "after $word"; exit 4` } });
    await waitFor(() => existsSync(marker), { timeoutMs: 30_000, what: 'the routed command running on the agent' });

    await cluster.nats.restart();
    await writeFile(fifo, 'restart\n');

    const t0 = Date.now();
    const res = await waited;
    expect(res.status, await res.clone().text()).toBe(200);
    const { operation } = await json<{ operation: Operation }>(res);
    // Never a hang: the real outcome, or an error that says what happened.
    if (operation.state === 'succeeded') expect(operation.exitCode).toBe(4);
    else {
      expect(operation.state).toBe('failed');
      expect(['SEEDWIRE_BUS_UNAVAILABLE', 'SEEDWIRE_LOST']).toContain(operation.error?.code);
    }
    expect(Date.now() - t0).toBeLessThan(90_000);
    // The holder recorded the real outcome in the store, and both its audit rows.
    await waitFor(async () => (await json<Operation>(await cluster.member(2).api('GET', `/api/operations/${operation.id}`))).state !== 'running', { timeoutMs: 30_000, what: 'the stored outcome' });
    expect(await json<Operation>(await cluster.member(2).api('GET', `/api/operations/${operation.id}`))).toMatchObject({ state: 'succeeded', exitCode: 4 });
    expect((await auditOf(operation.id)).map((r) => r.outcome).sort()).toEqual(['started', 'succeeded']);

    await cluster.settled();
    // Routing works again, in every direction.
    for (const n of [1, 2, 3]) for (const id of AGENTS) await hostname(n, id);
    expect(await everyAgentListed()).toBe(true);
  }, 180_000);

  it('moves the agents of a SIGKILLed controller to the others within 60 s, cleans up its presence, and routes to their new holder', async () => {
    const victim = cluster.member(3);
    const t0 = Date.now();
    await victim.kill();
    await waitFor(async () => (await cluster.holderOf('fail-3')) !== null, { timeoutMs: 60_000, intervalMs: 100, what: 'fail-3 back on a surviving controller' });
    const backAfterMs = Date.now() - t0;
    expect(backAfterMs).toBeLessThan(60_000);
    const holder = (await cluster.holderOf('fail-3'))!;
    expect(holder.n).not.toBe(3);

    // Presence: every survivor lists fail-3 connected and held by the new holder, none by the dead one.
    await waitFor(everyAgentListed, { timeoutMs: 30_000, intervalMs: 200, what: 'every agent listed, held by a live controller' });
    for (const n of [1, 2]) {
      const detail = await json<AgentView>(await cluster.member(n).api('GET', '/api/agents/fail-3'));
      expect(detail).toMatchObject({ connected: true, holder: holder.url });
    }
    // Operations on it, asked of either survivor, run on its new holder.
    for (const n of [1, 2]) await hostname(n, 'fail-3');
    const other = holder.n === 1 ? 2 : 1;
    const exec = await cluster.member(other).api('POST', '/api/agents/fail-3/ops/exec?wait=30', { params: { command: 'echo moved' } });
    expect((await json<{ operation: Operation }>(exec)).operation).toMatchObject({ state: 'succeeded', outputTail: 'moved\n' });
  }, 120_000);
});
