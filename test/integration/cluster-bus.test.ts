/**
 * Cluster mode's bus: three real controllers (in-process, each with its own data dir) on one real
 * nats-server, real agents spread across them. Operations requested on one controller for an
 * agent another holds are routed, stream live, return the exit code and can be canceled; every
 * controller's SSE shows the fleet's events; a restarted nats-server is redialed and routing
 * works again; an agent no controller holds is refused.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import type { Operation } from '../../server-stub/ops/types.js';
import { makeTempDir, startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers } from '../helpers/controller.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/nats.js';
import { missingTools } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'cluster-agent-token';
const ADMIN_TOKEN = 'cluster-admin-token';
// Ids with the characters NATS gives meaning to or that a naive subject would split on.
const AGENT_1 = 'db-1.dc-a:3306@one';
const AGENT_3 = 'db-3.dc-c';
const skip = missingTools(['nats-server', 'mkfifo']);

let nats: NatsServer;
const controllers: Controller[] = [];
const dataDirs: string[] = [];
const aborts: AbortController[] = [];

async function api(controller: Controller, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${controller.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(signal ? { signal } : {}),
  });
}

async function startOp(controller: Controller, agentId: string, command: string): Promise<Operation> {
  const res = await api(controller, 'POST', `/api/agents/${encodeURIComponent(agentId)}/ops/exec?wait=0`, { params: { command } });
  expect(res.status, await res.clone().text()).toBe(202);
  return ((await res.json()) as { operation: Operation }).operation;
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
    // The test stopped reading (its abort at the end); anything else is a failure.
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
            const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(text)}`)), 15_000);
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

/** Every controller's bus link is up and has told the server about its subscriptions. */
async function busSettled(): Promise<void> {
  await waitFor(() => controllers.every((c) => c.deps.cluster?.link.connected() === true), { timeoutMs: 20_000, what: 'every controller connected to NATS' });
  await Promise.all(controllers.map((c) => c.deps.cluster!.link.connection()!.flush()));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip !== null)('controllers routing over NATS', () => {
  beforeAll(async () => {
    nats = await startNatsServer();
    for (let i = 0; i < 3; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), `seedwire-cluster-${i + 1}-`));
      dataDirs.push(dataDir);
      controllers.push(
        await createController({
          dataDir,
          adminToken: ADMIN_TOKEN,
          agentToken: AGENT_TOKEN,
          bus: nats.url,
          clusterLimits: { reconnectWaitMs: 100, aliveMs: 500, silenceMs: 2_000, orphanFailMs: 2_000 },
        }),
      );
    }
    const [c1, c2, c3] = controllers as [Controller, Controller, Controller];
    startAgent({ controllerUrl: c1.wsUrl, token: AGENT_TOKEN, id: AGENT_1, config: { allowArbitraryCommands: true } });
    startAgent({ controllerUrl: c2.wsUrl, token: AGENT_TOKEN, id: 'db-2', config: { allowArbitraryCommands: true } });
    startAgent({ controllerUrl: c3.wsUrl, token: AGENT_TOKEN, id: AGENT_3, config: { allowArbitraryCommands: true } });
    await waitFor(() => c1.deps.hub.isConnected(AGENT_1) && c2.deps.hub.isConnected('db-2') && c3.deps.hub.isConnected(AGENT_3), { timeoutMs: 30_000, what: 'three agents connected' });
    await busSettled();
  }, 90_000);

  afterAll(async () => {
    for (const abort of aborts.splice(0)) abort.abort();
    await stopAllAgents();
    await stopAllControllers();
    await Promise.all(controllers.splice(0).map((c) => c.close()));
    await stopAllNatsServers();
    for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('each controller counts the three sharing the fleet (admission paces each by a third)', async () => {
    for (const c of controllers) {
      await waitFor(() => c.deps.cluster?.members.count() === 3, { timeoutMs: 15_000, what: 'three controllers heard on the bus' });
    }
  });

  it("streams a routed operation's output live and returns its exit code", async () => {
    const [c1, , c3] = controllers as [Controller, Controller, Controller];
    const fifo = join(makeTempDir('seedwire-cluster-fifo-'), 'gate');
    execFileSync('mkfifo', [fifo]);
    const started = await startOp(c1, AGENT_3, `echo first; read word < ${fifo}; echo "second $word"; exit 3`);
    expect(started).toMatchObject({ agentId: AGENT_3, op: 'exec', state: 'running' });
    expect(c1.deps.hub.isConnected(AGENT_3)).toBe(false);

    const abort = new AbortController();
    aborts.push(abort);
    const followed = await api(c1, 'GET', `/api/operations/${started.id}/output`, undefined, abort.signal);
    expect(followed.status).toBe(200);
    const stream = readStream(followed);
    // The first line is there while the command still waits on the fifo: live, not at the end.
    await stream.until((text) => text.includes('first\n'), 'the first line before the command ends');
    expect((await (await api(c1, 'GET', `/api/operations/${started.id}`)).json()) as Operation).toMatchObject({ state: 'running' });
    // A third controller (neither requester nor holder) follows it live too, from the fleet's events.
    const c2 = controllers[1]!;
    const third = readStream(await api(c2, 'GET', `/api/operations/${started.id}/output`, undefined, abort.signal));
    await third.until((text) => text === 'first\n', 'the stored output on a third controller');
    await writeFile(fifo, 'routed\n');
    expect(await stream.ended).toBe('first\nsecond routed\n');
    expect(await third.ended).toBe('first\nsecond routed\n');

    const final = (await (await api(c1, 'GET', `/api/operations/${started.id}`)).json()) as Operation;
    expect(final).toMatchObject({ id: started.id, agentId: AGENT_3, exitCode: 3 });
    expect(final.state).not.toBe('running');
    // The holder ran it: its store and audit have it, the requester's store does not.
    expect(await c3.deps.operations.get(started.id)).toMatchObject({ exitCode: 3 });
    expect(await c1.deps.operations.get(started.id)).toBeNull();

    // wait=N answers as for a local operation: the final row, output tail included.
    const waited = await api(c1, 'POST', `/api/agents/${encodeURIComponent(AGENT_3)}/ops/exec?wait=30`, { params: { command: 'echo waited' } });
    expect(waited.status).toBe(200);
    expect(((await waited.json()) as { operation: Operation }).operation).toMatchObject({ state: 'succeeded', exitCode: 0, outputTail: 'waited\n' });

    // A third controller finds the operation (and its output) by asking the cluster.
    expect(((await (await api(c2, 'GET', `/api/operations/${started.id}`)).json()) as Operation).exitCode).toBe(3);
    expect(await (await api(c2, 'GET', `/api/operations/${started.id}/output?follow=0`)).text()).toBe('first\nsecond routed\n');
    expect((await api(c2, 'GET', '/api/operations/no-such-operation')).status).toBe(404);

    // A quick read-only operation: answered with its final row, which every controller finds, and
    // nothing left running on the requester (api-targets.test.ts checks the same on PostgreSQL,
    // where the holder's reply carries the end).
    const quick = await api(c1, 'POST', `/api/agents/${encodeURIComponent(AGENT_3)}/ops/hostname?wait=30`);
    expect(quick.status).toBe(200);
    const quickOp = ((await quick.json()) as { operation: Operation }).operation;
    expect(quickOp).toMatchObject({ state: 'succeeded', agentId: AGENT_3 });
    expect(((await (await api(c2, 'GET', `/api/operations/${quickOp.id}`)).json()) as Operation).state).toBe('succeeded');

    const metrics = await (await api(c1, 'GET', '/metrics')).text();
    expect(metrics).toMatch(/^seedwire_cluster_bus_connected 1$/m);
    expect(metrics).toMatch(/^seedwire_cluster_routed_operations_total 3$/m);
    expect(metrics).toMatch(/^seedwire_cluster_routed_operations_running 0$/m);
    expect(metrics).toMatch(/^seedwire_cluster_agents_held 1$/m);
  }, 60_000);

  it('cancels a routed operation from the controller that requested it: the process is gone on the agent', async () => {
    const c2 = controllers[1]!;
    const started = await startOp(c2, AGENT_3, 'sleep 300 & echo "pid=$!"; wait');
    const abort = new AbortController();
    aborts.push(abort);
    const stream = readStream(await api(c2, 'GET', `/api/operations/${started.id}/output`, undefined, abort.signal));
    await stream.until((text) => /pid=\d+\n/.test(text), 'the pid of the sleep');
    const pid = Number(/pid=(\d+)/.exec(stream.text())![1]);
    expect(pidAlive(pid)).toBe(true);

    const canceled = await api(c2, 'POST', `/api/operations/${started.id}/cancel`);
    expect(canceled.status).toBe(200);
    expect(((await canceled.json()) as { operation: Operation }).operation).toMatchObject({ id: started.id, state: 'canceled' });
    await waitFor(() => !pidAlive(pid), { timeoutMs: 15_000, what: `process ${pid} gone after the cancel` });
    await stream.ended;
  }, 60_000);

  it("shows another controller's operation events on SSE", async () => {
    const [c1, c2] = controllers as [Controller, Controller, Controller];
    const abort = new AbortController();
    aborts.push(abort);
    const sse = readStream(await api(c2, 'GET', '/api/events', undefined, abort.signal));
    await sse.until((text) => text.startsWith('retry:'), 'the SSE greeting');
    // Answered once controller 2 follows the others' events (it has a viewer now).
    expect(await (await api(c2, 'GET', '/metrics')).text()).toMatch(/^seedwire_cluster_events_following 1$/m);
    // An operation of controller 1 on its own agent: not routed, only its events travel.
    const res = await api(c1, 'POST', `/api/agents/${encodeURIComponent(AGENT_1)}/ops/hostname?wait=30`);
    expect(res.status).toBe(200);
    const { operation } = (await res.json()) as { operation: Operation };
    await sse.until((text) => text.includes(`"id":"${operation.id}"`) && text.includes('"state":"succeeded"'), "controller 1's operation event on controller 2");
    abort.abort();
  }, 60_000);

  it('refuses an operation for an agent no controller holds, naming it', async () => {
    const res = await api(controllers[0]!, 'POST', '/api/agents/nobody.anywhere/ops/hostname');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'SEEDWIRE_AGENT_UNKNOWN', message: 'no agent nobody.anywhere is connected to any controller of this cluster' } });
  });

  it('keeps local operations working while NATS is down, refuses routed ones clearly, and routes again once it is back', async () => {
    const [c1] = controllers as [Controller, Controller, Controller];
    // A routed operation that ends while NATS is down: its requester still learns the outcome.
    const fifo = join(makeTempDir('seedwire-cluster-fifo-'), 'gate');
    execFileSync('mkfifo', [fifo]);
    const across = await startOp(c1, AGENT_3, `read word < ${fifo}; echo "after $word"; exit 4`);
    await nats.stop();
    await waitFor(() => controllers.every((c) => !c.deps.cluster!.link.connected()), { what: 'every controller noticing NATS is down' });

    const local = await api(c1, 'POST', `/api/agents/${encodeURIComponent(AGENT_1)}/ops/exec?wait=30`, { params: { command: 'echo local' } });
    expect(local.status).toBe(200);
    expect(((await local.json()) as { operation: Operation }).operation).toMatchObject({ state: 'succeeded', outputTail: 'local\n' });

    const routed = await api(c1, 'POST', `/api/agents/${encodeURIComponent(AGENT_3)}/ops/hostname`);
    expect(routed.status).toBe(503);
    expect(((await routed.json()) as { error: { code: string } }).error.code).toBe('SEEDWIRE_BUS_UNAVAILABLE');
    await writeFile(fifo, 'outage\n');
    await waitFor(async () => (await controllers[2]!.deps.operations.get(across.id))?.state !== 'running', { what: 'the holder recording the end during the outage' });

    await nats.restart();
    await busSettled();
    await waitFor(async () => ((await (await api(c1, 'GET', `/api/operations/${across.id}`)).json()) as Operation).state !== 'running', { timeoutMs: 20_000, what: "the requester learning the outcome of the operation that ended during the outage" });
    expect((await (await api(c1, 'GET', `/api/operations/${across.id}`)).json()) as Operation).toMatchObject({ exitCode: 4 });
    const again = await api(c1, 'POST', `/api/agents/${encodeURIComponent(AGENT_3)}/ops/exec?wait=30`, { params: { command: 'echo back' } });
    expect(again.status, await again.clone().text()).toBe(200);
    expect(((await again.json()) as { operation: Operation }).operation).toMatchObject({ state: 'succeeded', outputTail: 'back\n' });
  }, 90_000);

  it('fails a routed operation with a clear error, not a hang, when the controller holding the agent is killed', async () => {
    const c1 = controllers[0]!;
    // A controller process (flags as an operator gives them) holding one agent.
    // Credentials in the bus URL (a server without auth accepts them) are never logged.
    const busUrl = nats.url.replace('nats://', 'nats://seedwire:s3cret-bus-pw@');
    const doomed = await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, env: { SEEDWIRE_BUS: busUrl }, extraArgs: ['--advertise-url', 'http://controller-4.example:7070'] });
    try {
      startAgent({ controllerUrl: doomed.wsUrl, token: AGENT_TOKEN, id: 'db-4', config: { allowArbitraryCommands: true } });
      await waitFor(async () => (await api(c1, 'POST', '/api/agents/db-4/ops/hostname?wait=30')).status === 200, { timeoutMs: 30_000, what: 'db-4 reachable through controller 1' });
      const started = await startOp(c1, 'db-4', 'sleep 60 & echo "pid=$!"; wait');
      let pid = 0;
      try {
        await waitFor(async () => /pid=\d+/.test(await (await api(c1, 'GET', `/api/operations/${started.id}/output?follow=0`)).text()), { what: 'the routed output' });
        pid = Number(/pid=(\d+)/.exec(await (await api(c1, 'GET', `/api/operations/${started.id}/output?follow=0`)).text())![1]);
        expect(doomed.logs.find((r) => r.msg === 'cluster mode')).toMatchObject({ bus: nats.url, advertiseUrl: 'http://controller-4.example:7070' });
        expect(doomed.output()).not.toContain('s3cret-bus-pw');
        await doomed.kill();
        // The requester's own wait (as POST ...?wait=N uses) ends; no polling for it.
        await c1.deps.cluster!.routed.wait(started.id, 30_000);
        const waited = (await (await api(c1, 'GET', `/api/operations/${started.id}`)).json()) as Operation;
        expect(waited).toMatchObject({ state: 'failed', error: { code: 'SEEDWIRE_LOST' } });
        expect(waited.error!.message).toContain('db-4');
        // Nobody holds db-4 now (controller 1 never saw it: unknown here).
        expect((await api(c1, 'POST', '/api/agents/db-4/ops/hostname')).status).toBe(404);
      } finally {
        if (pid > 0 && pidAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    } finally {
      await doomed.kill();
      doomed.cleanup();
    }
  }, 90_000);

  it('refuses bad cluster flags with one line naming the flag, never echoing bus credentials', async () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'server-stub/main.ts', ...args], {
          cwd: new URL('../../', import.meta.url).pathname,
          env: { ...process.env, SEEDWIRE_AGENT_TOKEN: AGENT_TOKEN, ...env },
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('exit', (code) => resolve({ code, stderr }));
      });
    // Three processes at once: each start of tsx is slow on a loaded machine.
    const [scheme, lonely, advertise] = await Promise.all([
      run(['--bus', 'http://user:pw-in-url@127.0.0.1:4222']),
      run(['--advertise-url', 'http://a.example:7070']),
      run(['--advertise-url', 'ftp://a.example'], { SEEDWIRE_BUS: 'nats://127.0.0.1:4222' }),
    ]);
    expect(scheme.code).toBe(2);
    expect(scheme.stderr.trim().split('\n')).toHaveLength(1);
    expect(scheme.stderr).toMatch(/SEEDWIRE_CONFIG: --bus: scheme must be nats:\/\/ or tls:\/\//);
    expect(scheme.stderr).not.toContain('pw-in-url');
    expect(lonely.stderr).toMatch(/SEEDWIRE_CONFIG: --advertise-url: only with --bus/);
    expect(advertise.stderr).toMatch(/SEEDWIRE_CONFIG: --advertise-url: expected http:\/\/ or https:\/\//);
  }, 120_000);
});
