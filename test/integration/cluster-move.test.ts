/**
 * The move frame and the bus's `move` verb (cluster mode: a seed's owner summons its agents):
 * three real controllers in-process on one real PostgreSQL and one real nats-server, a real agent
 * whose controller list names only the first two. A move to a URL outside its list is refused and
 * the agent stays; a summon from a listed controller moves it there and the command it was running
 * resumes on the new controller; the holder refuses to move an agent to a URL no live member
 * advertises.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import { decodeMessage, encodeMessage, MoveReply } from '../../server-stub/cluster/messages.js';
import { SUBJECTS } from '../../server-stub/cluster/subjects.js';
import type { Operation } from '../../server-stub/ops/types.js';
import { createSeedPlugin } from '../../server-stub/seed/plugin.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/nats.js';
import { missingPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { missingTools } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'move-agent-token';
const ADMIN_TOKEN = 'move-admin-token';
const AGENT = 'db-move';
const skip = missingTools(['nats-server']) ?? missingPostgres();

let nats: NatsServer;
let pgServer: PostgresServer;
let agent: AgentProcess;
const controllers: Controller[] = [];
const dataDirs: string[] = [];

async function api(controller: Controller, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${controller.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

function holderOf(): number {
  return controllers.findIndex((c) => c.deps.hub.isConnected(AGENT));
}

describe.skipIf(skip !== null)('moving an agent between controllers', () => {
  beforeAll(async () => {
    [nats, pgServer] = await Promise.all([startNatsServer(), startPostgres()]);
    const store = await pgServer.createDatabase(`move_${process.pid}`);
    for (let i = 0; i < 3; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), `seedwire-move-${i + 1}-`));
      dataDirs.push(dataDir);
      controllers.push(
        await createController({ dataDir, store, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, bus: nats.url, plugins: [createSeedPlugin()], clusterLimits: { reconnectWaitMs: 100 } }),
      );
    }
    const [c1, c2] = controllers as [Controller, Controller, Controller];
    agent = startAgent({ controllerUrl: c1.wsUrl, token: AGENT_TOKEN, id: AGENT, config: { controller: [c1.wsUrl, c2.wsUrl], allowArbitraryCommands: true } });
    await waitFor(() => c1.deps.hub.isConnected(AGENT), { timeoutMs: 30_000, what: 'the agent on controller 1' });
    await agent.waitForLog((l) => l.msg === 'connected', { timeoutMs: 10_000 });
    await waitFor(() => controllers.every((c) => c.deps.cluster?.link.connected() === true), { timeoutMs: 20_000, what: 'every controller on the bus' });
    await Promise.all(controllers.map((c) => c.deps.cluster!.link.connection()!.flush()));
  }, 90_000);

  afterAll(async () => {
    await stopAllAgents();
    await Promise.all(controllers.splice(0).map((c) => c.close()));
    await stopAllNatsServers();
    await pgServer?.stop();
    for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("refuses a move frame to a URL outside the agent's controller list, and stays", async () => {
    const c1 = controllers[0]!;
    const mark = agent.logs.items.length;
    expect(c1.deps.hub.move(AGENT, 'ws://127.0.0.1:9/agent', 'test: not a listed controller')).toBe(true);
    await agent.waitForLog((l) => l.msg === 'refused to move to a controller that is not in the configured list' && l['to'] === 'ws://127.0.0.1:9/agent', { timeoutMs: 10_000 });
    // Still on the same session: it neither disconnected nor dialed anything else.
    const op = await api(c1, 'POST', `/api/agents/${AGENT}/ops/exec?wait=30`, { params: { command: 'echo still-here' } });
    expect(((await op.json()) as { operation: Operation }).operation).toMatchObject({ state: 'succeeded', outputTail: 'still-here\n' });
    expect(agent.logs.items.slice(mark).filter((l) => l.msg === 'disconnected' || l.msg === 'connected')).toEqual([]);
    expect(holderOf()).toBe(0);
  });

  it('the holder refuses to move an agent to a URL no live controller of the cluster advertises', async () => {
    const c3 = controllers[2]!;
    const nc = c3.deps.cluster!.link.connection()!;
    const answer = await nc.request(SUBJECTS.agent(AGENT, 'move'), encodeMessage({ requester: 'test', url: 'http://127.0.0.1:9', reason: 'test' }), { timeout: 5_000 });
    const reply = decodeMessage(MoveReply, answer.data, 'move reply');
    expect(reply.ok).toBe(false);
    expect(!reply.ok && reply.error).toMatchObject({ code: 'SEEDWIRE_BAD_REQUEST', message: expect.stringContaining('not the advertise URL of a live controller') });
    expect(holderOf()).toBe(0);
  });

  it('a summon from a listed controller moves the agent there, and the command it was running resumes on it', async () => {
    const [c1, c2] = controllers as [Controller, Controller, Controller];
    const started = await api(c1, 'POST', `/api/agents/${AGENT}/ops/exec?wait=0`, { params: { command: 'echo before; sleep 2; echo after-move' } });
    expect(started.status).toBe(202);
    const { operation } = (await started.json()) as { operation: Operation };
    await waitFor(async () => (await c1.deps.store.output.readText(operation.id)).includes('before'), { timeoutMs: 10_000, what: 'the first line' });

    expect(await c2.deps.cluster!.summon(AGENT)).toBe('moved');
    await waitFor(() => c2.deps.hub.isConnected(AGENT), { timeoutMs: 15_000, what: 'the agent on controller 2' });
    expect(agent.logs.items.some((l) => l.msg === 'moving to another controller as asked')).toBe(true);
    // The new controller took the running call over from the shared store and records its end.
    await waitFor(async () => (await c2.deps.operations.get(operation.id))?.state === 'succeeded', { timeoutMs: 20_000, what: 'the operation to end on controller 2' });
    expect(await c2.deps.operations.get(operation.id)).toMatchObject({ exitCode: 0 });
    expect(await c2.deps.store.output.readText(operation.id)).toBe('before\nafter-move\n');
    // Summoned again where it already is: nothing to do.
    expect(await c2.deps.cluster!.summon(AGENT)).toBe('here');
  });

  it("a summon from a controller outside the agent's list reaches the agent, which refuses and stays", async () => {
    const [, c2, c3] = controllers as [Controller, Controller, Controller];
    expect(holderOf()).toBe(1);
    const mark = agent.logs.items.length;
    expect(await c3.deps.cluster!.summon(AGENT)).toBe('moved'); // the holder sent the frame: c3 is a live member
    await agent.waitForLog((l) => l.msg === 'refused to move to a controller that is not in the configured list', { timeoutMs: 10_000 });
    expect(agent.logs.items.slice(mark).filter((l) => l.msg === 'disconnected')).toEqual([]);
    expect(c2.deps.hub.isConnected(AGENT)).toBe(true);
    expect(c3.deps.hub.isConnected(AGENT)).toBe(false);
  });
});
