/**
 * An agent given a list of controllers (README, "Several controllers"): real controller processes
 * and real agent processes. It connects to the first, moves down the list when that one is lost
 * (a graceful stop, a SIGKILL, a controller gone silent) or refuses it, honours a Retry-After for
 * the controller that sent it only, stays where it is once welcomed, and its data connections dial
 * the controller its session is on.
 *
 * Both controllers admit the agents with per-agent tokens (`--agent-tokens`), as controllers that
 * share one store would: an identity valid on one is valid on the other.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, spawnAgentCli, startAgent, stopAllAgents, type AgentProcess, type LogLine } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { seedApi } from '../helpers/seed-api.js';
import { digestTree } from '../helpers/tree.js';

const TOKENS: Record<string, string> = { fo: 'failover-token-fo', src: 'failover-token-src', dst: 'failover-token-dst' };
/** Fast redials, so a test waits on events and not on a production backoff. */
const FAST = { reconnectBaseMs: 100, reconnectCapMs: 1_000 };

interface StatusJson {
  controller: string;
  controllers: string[];
  connection: { state: string; controller: string; lastError: string | null };
}

const controllers: RunningController[] = [];
const servers: Server[] = [];

afterEach(async () => {
  await stopAllAgents();
  await stopAllControllers();
  for (const c of controllers.splice(0)) c.cleanup();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

function writeTokens(tokens: Record<string, string>): string {
  const file = join(makeTempDir('sw-failover-tokens-'), 'tokens.json');
  writeFileSync(file, JSON.stringify(tokens));
  return file;
}

async function startControllerWith(tokens: Record<string, string> = TOKENS): Promise<RunningController> {
  const c = await startController({ agentToken: 'failover-unused-enrollment-token', extraArgs: ['--agent-tokens', writeTokens(tokens)] });
  controllers.push(c);
  return c;
}

function startListAgent(id: string, urls: string[], config: Record<string, unknown> = {}, extraArgs: string[] = []): AgentProcess {
  return startAgent({
    controllerUrl: 'unused',
    token: TOKENS[id]!,
    id,
    extraArgs,
    config: { controller: urls, status: { intervalSeconds: 1 }, ...config, advanced: { ...FAST, ...(config['advanced'] as object | undefined) } },
  });
}

const isConnectedTo = (url: string) => (l: LogLine) => l.msg === 'connected' && l.controller === url;

function connectedCount(agent: AgentProcess): number {
  return agent.logs.items.filter((l) => l.msg === 'connected').length;
}

function readStatus(agent: AgentProcess): StatusJson {
  return JSON.parse(readFileSync(join(agent.stateDir, 'status.json'), 'utf8')) as StatusJson;
}

async function expectStatusOn(agent: AgentProcess, url: string, urls: string[]): Promise<void> {
  await expect.poll(() => readStatus(agent), { timeout: 10_000, interval: 100 }).toMatchObject({ controller: url, controllers: urls, connection: { state: 'connected', controller: url } });
}

/** A hostname op through `c` on the agent, which must answer it. */
async function expectOpWorks(c: RunningController, id: string): Promise<void> {
  const res = await c.api('POST', `/api/agents/${id}/ops/hostname?wait=30`);
  const body = (await res.json()) as { operation?: { state: string } };
  expect(res.status).toBe(200);
  expect(body.operation?.state).toBe('succeeded');
}

/** The first log line matching `pred` after the first one matching `after`. */
function firstAfter(agent: AgentProcess, after: (l: LogLine) => boolean, pred: (l: LogLine) => boolean): LogLine | undefined {
  const start = agent.logs.items.findIndex(after);
  return start < 0 ? undefined : agent.logs.items.slice(start + 1).find(pred);
}

describe('an agent with a list of controllers', () => {
  it('connects to the first; when it stops gracefully, moves to the next, where an op works; the status names it', async () => {
    const [c1, c2] = [await startControllerWith(), await startControllerWith()];
    const urls = [c1!.wsUrl, c2!.wsUrl];
    const agent = startListAgent('fo', urls);
    await agent.waitForLog(isConnectedTo(c1!.wsUrl), { timeoutMs: 30_000, what: 'connected to c1' });
    await expectStatusOn(agent, c1!.wsUrl, urls);
    expect((await c2!.api('GET', '/api/agents/fo')).status).toBe(404);

    expect(await c1!.stop()).toBe(0);
    await agent.waitForLog(isConnectedTo(c2!.wsUrl), { timeoutMs: 30_000, what: 'connected to c2' });
    // The first redial after the loss went to c2, after one backoff delay (within reconnectCapMs).
    const redial = firstAfter(agent, (l) => l.msg === 'disconnected', (l) => l.msg === 'redialing controller');
    expect(redial).toMatchObject({ controller: c2!.wsUrl });
    expect(redial!['delayMs']).toBeLessThanOrEqual(FAST.reconnectCapMs);
    await expectOpWorks(c2!, 'fo');
    await expectStatusOn(agent, c2!.wsUrl, urls);
  }, 90_000);

  it('after a SIGKILL of its controller reaches the next (list from repeated --controller flags), stays there when the first returns, and wraps round when it too is lost', async () => {
    const [c1, c2] = [await startControllerWith(), await startControllerWith()];
    const agent = startListAgent('fo', ['ws://127.0.0.1:1/agent'], {}, ['--controller', c1!.wsUrl, '--controller', c2!.wsUrl]);
    await agent.waitForLog(isConnectedTo(c1!.wsUrl), { timeoutMs: 30_000, what: 'connected to c1' });

    await c1!.kill();
    await agent.waitForLog(isConnectedTo(c2!.wsUrl), { timeoutMs: 30_000, what: 'connected to c2' });
    await expectOpWorks(c2!, 'fo');

    // c1 is back on its port: the agent does not go back to it (no flapping).
    const c1Again = await c1!.restart();
    controllers.push(c1Again);
    await expectOpWorks(c2!, 'fo');
    expect(connectedCount(agent)).toBe(2);
    expect((await (await c1Again.api('GET', '/api/agents/fo')).json()) as { connected?: boolean }).toMatchObject({ connected: false });

    const seen = agent.logs.items.length;
    await c2!.kill();
    await agent.logs.waitFor(isConnectedTo(c1Again.wsUrl), { fromIndex: seen, timeoutMs: 30_000, what: 'connected to c1 again' });
    await expectOpWorks(c1Again, 'fo');
  }, 120_000);

  it('leaves a controller that stopped answering (no FIN: a hung process) after deadAfterMs, for the next', async () => {
    const [c1, c2] = [await startControllerWith(), await startControllerWith()];
    const agent = startListAgent('fo', [c1!.wsUrl, c2!.wsUrl], { advanced: { heartbeatMs: 300, deadAfterMs: 1_500 } });
    await agent.waitForLog(isConnectedTo(c1!.wsUrl), { timeoutMs: 30_000, what: 'connected to c1' });
    process.kill(c1!.process.pid!, 'SIGSTOP');
    try {
      await agent.waitForLog((l) => l.msg === 'controller silent past deadAfterMs; terminating', { timeoutMs: 30_000 });
      await agent.waitForLog(isConnectedTo(c2!.wsUrl), { timeoutMs: 30_000, what: 'connected to c2' });
      await expectOpWorks(c2!, 'fo');
    } finally {
      process.kill(c1!.process.pid!, 'SIGCONT');
    }
  }, 90_000);

  it('goes to the next controller when the first refuses its token, without hammering the first', async () => {
    const c1 = await startControllerWith({ fo: 'another-token-entirely' });
    const c2 = await startControllerWith();
    const agent = startListAgent('fo', [c1.wsUrl, c2.wsUrl]);
    await agent.waitForLog(isConnectedTo(c2.wsUrl), { timeoutMs: 30_000, what: 'connected to c2' });
    await expectOpWorks(c2, 'fo');
    // One refusal, then it stays on c2.
    expect(agent.logs.items.filter((l) => l.msg === 'the controller refused the agent token')).toHaveLength(1);
    expect(connectedCount(agent)).toBe(1);
  }, 90_000);

  it("keeps a Retry-After for the controller that sent it: the next is tried at once, the pacing one not before it asked", async () => {
    let pacedDials = 0;
    const paced = createServer((_req, res) => res.writeHead(404).end());
    paced.on('upgrade', (_req, socket) => {
      pacedDials += 1;
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"error":{"code":"SEEDWIRE_BUSY","message":"admission paced"}}');
    });
    servers.push(paced);
    await new Promise<void>((resolve) => paced.listen(0, '127.0.0.1', resolve));
    const pacedUrl = `ws://127.0.0.1:${(paced.address() as AddressInfo).port}/agent`;
    const c2 = await startControllerWith();
    // A cap well above the Retry-After, so the wait comes from it and not from the backoff.
    const agent = startListAgent('fo', [pacedUrl, c2.wsUrl], { advanced: { reconnectBaseMs: 100, reconnectCapMs: 60_000 } });
    await agent.waitForLog(isConnectedTo(c2.wsUrl), { timeoutMs: 30_000, what: 'connected to c2' });
    const asked = agent.logs.items.find((l) => l.msg === 'controller asked to retry later; redialing then');
    expect(asked).toMatchObject({ retryAfterMs: 30_000, controller: c2.wsUrl });
    expect(asked!['delayMs']).toBeLessThan(100);

    await c2.kill();
    const redial = await agent.waitForLog((l) => l.msg === 'redialing controller' && l.controller === pacedUrl, { timeoutMs: 30_000 });
    // Still held by its Retry-After (30 s from the refusal), far beyond any backoff delay so far.
    expect(redial['delayMs']).toBeGreaterThan(5_000);
    expect(pacedDials).toBe(1);
  }, 90_000);

  it('refuses a bad entry in a --controller list naming its position', async () => {
    const child = spawnAgentCli(['--controller', 'ws://127.0.0.1:1/agent', '--controller', 'http://127.0.0.1:2/agent', '--token', 't']);
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr).toContain('config error at controller.1: must be a ws:// or wss:// URL');
  }, 30_000);
});

function metric(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

describe('data connections after a failover', () => {
  it('dial the controller the session moved to: a seed on c2 after c1 was killed runs over data connections to c2', async () => {
    const [c1, c2] = [await startControllerWith(), await startControllerWith()];
    const dir = makeTempDir('sw-failover-seed-');
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 3; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(1024 * 1024));
    mkdirSync(join(dir, 'dst'));
    const mysql = (id: string): Record<string, unknown> => {
      const flag = join(dir, `${id}.running`);
      return { datadir: join(dir, id), startCommand: `touch ${flag}`, stopCommand: `rm -f ${flag}`, statusCommand: `test -f ${flag}` };
    };
    const urls = [c1!.wsUrl, c2!.wsUrl];
    const agents = ['src', 'dst'].map((id) => startListAgent(id, urls, { mysql: mysql(id) }));
    for (const agent of agents) await agent.waitForLog(isConnectedTo(c1!.wsUrl), { timeoutMs: 60_000, what: 'connected to c1' });

    await c1!.kill();
    for (const agent of agents) await agent.waitForLog(isConnectedTo(c2!.wsUrl), { timeoutMs: 30_000, what: 'connected to c2' });
    const { api, agentsReady, seedUntilDone } = seedApi(() => c2!);
    await agentsReady(['src', 'dst']);
    const before = await (await c2!.api('GET', '/metrics')).text();
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', compression: 'none', lanes: 1 });
    expect(created.status).toBe(202);
    const seed = await seedUntilDone(created.body.seed.id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(digestTree(join(dir, 'dst'))).toEqual(digestTree(src));
    const after = await (await c2!.api('GET', '/metrics')).text();
    expect(metric(after, 'seedwire_data_connections_total') - metric(before, 'seedwire_data_connections_total')).toBe(2);
    expect(metric(after, 'seedwire_relay_control_data_frames_total')).toBe(0);
  }, 240_000);
});
