/**
 * A seed between agents in two datacenters (so `auto` compression picks zstd) whose target link
 * is cut mid-transfer by a real TCP proxy: the target redials, the seed resumes from the target's
 * committed offset and ends with an identical tree. Real controller and agent processes; the
 * "MySQL" service is a state file, the datadirs are generated trees.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { resumedLanes, seedApi } from '../helpers/seed-api.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { digestTree, serviceCommands } from '../helpers/tree.js';

const TOKEN = 'link-drop-token';

describe('a seed survives its target agent losing the link', () => {
  let dir: string;
  let controller: RunningController;
  let proxy: TcpProxy;
  let source: AgentProcess;
  let target: AgentProcess;
  const { api, agentsReady, seedUntilDone } = seedApi(() => controller);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-drop-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    // Half random (incompressible, like most InnoDB pages), half repetitive: zstd has work to do.
    for (let i = 0; i < 6; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(4 * 1024 * 1024));
    for (let i = 0; i < 6; i += 1) writeFileSync(join(src, 'shop', `log${i}.ibd`), Buffer.alloc(4 * 1024 * 1024, i));
    writeFileSync(join(src, 'ibdata1'), randomBytes(1024 * 1024));
    mkdirSync(join(dir, 'dst'));

    controller = await startController({ agentToken: TOKEN });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(controller.url).port) });
    source = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'src',
      config: { datacenter: 'dc-east', mysql: { datadir: src, ...serviceCommands(join(dir, 'src.running')) } },
    });
    target = startAgent({
      controllerUrl: proxy.url('/agent'),
      token: TOKEN,
      id: 'dst',
      config: { datacenter: 'dc-west', mysql: { datadir: join(dir, 'dst'), ...serviceCommands(join(dir, 'dst.running')) } },
    });
    await agentsReady(['src', 'dst']);
  });

  afterAll(async () => {
    await stopAllAgents();
    await proxy?.close();
    await stopAllControllers();
    controller?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('resumes from the committed offset after the cut, re-sends under two windows, and verifies', { timeout: 180_000 }, async () => {
    const created = await api<{ seed: { id: string; effectiveCompression: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', maxBytesPerSec: 8 * 1024 * 1024 });
    expect(created.status).toBe(202);
    expect(created.body.seed.effectiveCompression).toBe('zstd'); // auto, across datacenters
    const id = created.body.seed.id;

    await vi.waitFor(
      async () => {
        const s = (await api<{ stage: string; bytesDone: number; bytesTotal: number }>('GET', `/api/seeds/${id}`)).body;
        expect(s.stage).toBe('transfer');
        expect(s.bytesDone / s.bytesTotal).toBeGreaterThan(0.3);
      },
      { timeout: 60_000, interval: 100 },
    );
    const connectionsBefore = target.logs.items.filter((l) => l.msg === 'connected').length;
    proxy.cut(); // only the target's link drops; the controller and the source stay up

    const seed = await seedUntilDone(id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    expect(target.logs.items.filter((l) => l.msg === 'connected').length).toBeGreaterThan(connectionsBefore);
    const resumed = resumedLanes(source, id, seed.lanes);
    expect(resumed.length).toBeGreaterThan(0);
    for (const sends of resumed) {
      expect(sends[1]!.from).toBeGreaterThan(0);
      expect(sends[0]!.to - sends[1]!.from).toBeLessThan(2 * 16 * 1024 * 1024);
    }

    expect(digestTree(join(dir, 'dst'))).toEqual(digestTree(join(dir, 'src')));
    expect(existsSync(join(dir, 'dst', INCOMPLETE_MARKER))).toBe(false);
    expect(existsSync(join(dir, 'dst.running'))).toBe(true);
    const audit = (await api<Array<{ action: string }>>('GET', '/api/audit?limit=100')).body;
    expect(audit.some((a) => a.action === 'seed.transfer.interrupted')).toBe(true);
  });
});
