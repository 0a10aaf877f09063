/**
 * The foundation as a user runs it: the real controller process and real agent processes, talking
 * over real sockets, with a real TCP proxy in between to black-hole the link.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { isAlive } from '../helpers/checks.js';

const TOKEN = 'link-test-token';

interface Operation {
  id: string;
  state: string;
  result: unknown;
  error: { code: string; message: string } | null;
  exitCode: number | null;
  outputTail: string;
}


describe('agent and controller, real processes', () => {
  let controller: RunningController;
  let dir: string;
  const proxies: TcpProxy[] = [];

  async function json<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await controller.api(method, path, body);
    return { status: res.status, body: (await res.json()) as T };
  }
  async function agentRow(id: string): Promise<{ connected: boolean; capabilities: string[] } | undefined> {
    return (await json<Array<{ id: string; connected: boolean; capabilities: string[] }>>('GET', '/api/agents')).body.find((a) => a.id === id);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-link-'));
    controller = await startController({ agentToken: TOKEN, extraArgs: ['--heartbeat-ms', '200', '--dead-after-ms', '1500'] });
  });
  afterEach(async () => {
    await stopAllAgents();
    for (const p of proxies.splice(0)) await p.close();
  });
  afterAll(async () => {
    await stopAllControllers();
    controller?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an agent connects, is listed, and streams a command its output while the command still runs', async () => {
    const fifo = join(dir, 'gate');
    execFileSync('mkfifo', [fifo]);
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'live', config: { customCommands: { gated: `echo first line; read _ < ${fifo}; echo second line` } } });
    await vi.waitFor(async () => expect((await agentRow('live'))?.connected).toBe(true), { timeout: 20_000 });
    expect((await agentRow('live'))?.capabilities).toContain('custom-command');

    const started = await json<{ operation: Operation }>('POST', '/api/agents/live/ops/custom-command?wait=0', { params: { name: 'gated' } });
    expect(started.status).toBe(202);
    const id = started.body.operation.id;
    const res = await controller.api('GET', `/api/operations/${id}/output`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('first line')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(text).toContain('first line');
    // the command is still blocked on the fifo: the line arrived live, not at the end
    expect((await json<Operation>('GET', `/api/operations/${id}`)).body.state).toBe('running');
    writeFileSync(fifo, 'go\n');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(text).toBe('first line\nsecond line\n');
    const op = (await json<Operation>('GET', `/api/operations/${id}`)).body;
    expect(op).toMatchObject({ state: 'succeeded', exitCode: 0, outputTail: 'first line\nsecond line\n' });
  });

  it('cancel through the API kills the whole process group, grandchildren included', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'cancel',
      config: { customCommands: { spawner: `bash -c 'sleep 300 & echo $! > ${pidFile}; wait'` } },
    });
    await vi.waitFor(async () => expect((await agentRow('cancel'))?.connected).toBe(true), { timeout: 20_000 });
    const { body } = await json<{ operation: Operation }>('POST', '/api/agents/cancel/ops/custom-command?wait=0', { params: { name: 'spawner' } });
    await vi.waitFor(() => expect(existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '').toBe(true), { timeout: 10_000 });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(grandchild)).toBe(true);
    const cancel = await controller.api('POST', `/api/operations/${body.operation.id}/cancel`);
    expect(cancel.status).toBeLessThan(300);
    await vi.waitFor(async () => expect((await json<Operation>('GET', `/api/operations/${body.operation.id}`)).body.state).toBe('canceled'), { timeout: 15_000 });
    await vi.waitFor(() => expect(isAlive(grandchild)).toBe(false), { timeout: 15_000 });
  });

  it('a wrong token is refused before the upgrade and the agent is never listed', async () => {
    // Slow redials: every refusal counts toward 127.0.0.1's failure limit, which the later tests'
    // agents (enrolling with the enrollment token from the same address) must stay under.
    const bad = startAgent({ controllerUrl: controller.wsUrl, token: 'not-the-token', id: 'intruder', config: { advanced: { reconnectBaseMs: 5_000, reconnectCapMs: 5_000 } } });
    await bad.waitForLog((l) => /401|auth/i.test(JSON.stringify(l)), { timeoutMs: 15_000 });
    expect(await agentRow('intruder')).toBeUndefined();
    expect(controller.output()).not.toContain('not-the-token');
    expect(bad.stdoutText.join('\n') + JSON.stringify(bad.logs.items)).not.toContain('not-the-token');
  });

  it('a black-holed link is detected by both sides and the agent comes back when the path heals', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(controller.url).port) });
    proxies.push(proxy);
    const agent = startAgent({
      controllerUrl: proxy.url('/agent'),
      token: TOKEN,
      id: 'natted',
      // a dial made while the path is black-holed waits for its welcome; a short handshake timeout
      // lets it give up and redial soon after the path heals
      config: { advanced: { heartbeatMs: 200, deadAfterMs: 1500, handshakeTimeoutMs: 2000, reconnectBaseMs: 50, reconnectCapMs: 300 } },
    });
    await agent.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
    proxy.setMode('blackhole');
    // the agent notices silence and terminates; the controller marks it disconnected
    await agent.waitForLog((l) => /silent|heartbeat/i.test(l.msg), { timeoutMs: 15_000 });
    await vi.waitFor(async () => expect((await agentRow('natted'))?.connected).toBe(false), { timeout: 15_000 });
    const connectedSoFar = agent.logs.items.filter((l) => l.msg === 'connected').length;
    proxy.setMode('forward');
    await vi.waitFor(() => expect(agent.logs.items.filter((l) => l.msg === 'connected').length).toBeGreaterThan(connectedSoFar), { timeout: 20_000 });
    await vi.waitFor(async () => expect((await agentRow('natted'))?.connected).toBe(true), { timeout: 15_000 });
    const op = await json<{ operation: Operation }>('POST', '/api/agents/natted/ops/hostname');
    expect(op.body.operation.state).toBe('succeeded');
  });

  it('the controller is killed with SIGKILL, restarted on the same data dir and port, and the agent is back with its history', async () => {
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'survivor' });
    await vi.waitFor(async () => expect((await agentRow('survivor'))?.connected).toBe(true), { timeout: 20_000 });
    const before = await json<{ operation: Operation }>('POST', '/api/agents/survivor/ops/hostname');
    expect(before.body.operation.state).toBe('succeeded');

    controller = await controller.restart();
    await vi.waitFor(async () => expect((await agentRow('survivor'))?.connected).toBe(true), { timeout: 20_000 });
    const kept = await json<Operation>('GET', `/api/operations/${before.body.operation.id}`);
    expect(kept.body.state).toBe('succeeded');
    const after = await json<{ operation: Operation }>('POST', '/api/agents/survivor/ops/hostname');
    expect(after.body.operation).toMatchObject({ state: 'succeeded', result: { hostname: expect.any(String) } });
  });
});
