/**
 * The agent's local status without the controller: stateDir/status.json (rewritten atomically)
 * and the optional loopback / unix-socket endpoint. A real agent process and a real controller
 * process; the controller is stopped and the status must say disconnected, keeping the last
 * contact time, so host monitoring can alert.
 */
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTempDir, startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';

const TOKEN = 'status-token';

interface StatusJson {
  agentId: string;
  agent: string;
  updatedAt: string;
  connection: { state: string; since: string; lastContactAt: string | null; sessionId: string | null; sessions: number; lastError: string | null };
  operations: Array<{ id: string; op: string }>;
  seeds: unknown[];
}

function readStatus(agent: AgentProcess): StatusJson {
  return JSON.parse(readFileSync(join(agent.stateDir, 'status.json'), 'utf8')) as StatusJson;
}

function getStatus(options: { socketPath: string } | { host: string; port: number }): Promise<{ status: number; body: StatusJson }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options, path: '/status', method: 'GET' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as StatusJson }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('local agent status', () => {
  let controller: RunningController;
  let agent: AgentProcess;
  let socketPath: string;

  beforeAll(async () => {
    controller = await startController({ agentToken: TOKEN });
    socketPath = join(makeTempDir('sw-status-sock-'), 'status.sock');
    agent = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'status-agent',
      config: { allowArbitraryCommands: true, status: { intervalSeconds: 1, listen: socketPath }, advanced: { reconnectBaseMs: 200, reconnectCapMs: 1_000 } },
    });
    await agent.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
  });

  it('says connected, lists a running operation, then disconnected with the last contact when the controller stops', async () => {
    await vi.waitFor(() => {
      const status = readStatus(agent);
      expect(status.agentId).toBe('status-agent');
      expect(status.agent).toBe('running');
      expect(status.connection.state).toBe('connected');
      expect(status.connection.lastContactAt).not.toBeNull();
    }, { timeout: 10_000, interval: 100 });
    const live = await getStatus({ socketPath });
    expect(live.status).toBe(200);
    expect(live.body.connection.state).toBe('connected');

    const started = await controller.api('POST', '/api/agents/status-agent/ops/exec?wait=0', { params: { command: 'sleep 30' } });
    expect(started.status).toBe(202);
    const { operation } = (await started.json()) as { operation: { id: string } };
    await vi.waitFor(() => expect(readStatus(agent).operations).toEqual([expect.objectContaining({ id: operation.id, op: 'exec' })]), { timeout: 10_000, interval: 100 });
    await controller.api('POST', `/api/operations/${operation.id}/cancel`);
    await vi.waitFor(() => expect(readStatus(agent).operations).toEqual([]), { timeout: 15_000, interval: 100 });

    const heardBefore = Date.parse(readStatus(agent).connection.lastContactAt!);
    expect(await controller.stop()).toBe(0);
    const stoppedAt = Date.now();
    let down!: StatusJson;
    await vi.waitFor(() => {
      down = readStatus(agent);
      expect(down.connection.state).toBe('disconnected');
      expect(Date.parse(down.updatedAt)).toBeGreaterThan(stoppedAt);
    }, { timeout: 15_000, interval: 100 });
    expect(down.connection.sessionId).toBeNull();
    const lastContact = Date.parse(down.connection.lastContactAt!);
    expect(lastContact).toBeGreaterThanOrEqual(heardBefore);
    expect(lastContact).toBeLessThanOrEqual(stoppedAt);
    // It stays disconnected while it redials, and the last contact does not move. (A redial that
    // reaches the controller while it shuts down may be answered 401 instead of refused: seen once
    // under load in CI; either says the redial failed.)
    await vi.waitFor(() => expect(readStatus(agent).connection.lastError).toMatch(/ECONNREFUSED|refused the agent token/), { timeout: 15_000, interval: 100 });
    const later = readStatus(agent);
    expect(later.connection.state).toBe('disconnected');
    expect(later.connection.lastContactAt).toBe(down.connection.lastContactAt);
    const endpoint = await getStatus({ socketPath });
    expect(endpoint.status).toBe(503);
    expect(endpoint.body.connection.state).toBe('disconnected');
  });

  it('writes agent: stopped on a graceful stop and removes nothing a monitor reads', async () => {
    expect((await agent.stop()).code).toBe(0);
    const status = readStatus(agent);
    expect(status.agent).toBe('stopped');
    expect(existsSync(join(agent.stateDir, 'status.json.tmp'))).toBe(false);
  });
});

describe('local status endpoint on 127.0.0.1', () => {
  afterAll(async () => {
    await stopAllAgents();
  });

  it('listens on loopback when asked, and refuses a non-loopback address at start-up', async () => {
    const agent = startAgent({ controllerUrl: 'ws://127.0.0.1:1/agent', token: TOKEN, id: 'loop', config: { status: { listen: '127.0.0.1:0' } } });
    const line = await agent.waitForLog((l) => l.msg === 'local status endpoint listening');
    const { port } = line['address'] as { port: number };
    await vi.waitFor(async () => {
      const res = await getStatus({ host: '127.0.0.1', port });
      expect(res.status).toBe(503);
      expect(res.body.connection.state).toBe('disconnected');
    }, { timeout: 15_000, interval: 100 });

    const open = startAgent({ controllerUrl: 'ws://127.0.0.1:1/agent', token: TOKEN, id: 'open', config: { status: { listen: '0.0.0.0:9000' } } });
    expect((await open.exited).code).toBe(2);
    expect(open.stderr()).toContain('status.listen');
  });
});
