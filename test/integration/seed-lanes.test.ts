/**
 * A real seed over 4 lanes: an in-process controller (so the test can reach its relay) and two
 * real agent processes copying a generated tree with a file large enough to be split into ranges.
 * One lane's relay stream is closed mid-way (its data path lost): that lane alone resumes from
 * its committed offset, the other lanes run once, and the result verifies.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../../client/api.js';
import { createController, type Controller } from '../../server-stub/app.js';
import { createSeedPlugin } from '../../server-stub/seed/plugin.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { digestTree, serviceCommands } from '../helpers/tree.js';

const AGENT_TOKEN = 'lanes-agent-token';
const ADMIN_TOKEN = 'lanes-admin-token';
const MiB = 1024 * 1024;

interface StepJson {
  id: string;
  op: string;
  state: string;
  params: { stream?: number; offset?: number; lane?: { index: number; count: number }; contentHash?: string };
}

describe('a seed over 4 lanes', () => {
  let dir: string;
  let controller: Controller;
  let client: ApiClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-lanes-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    // 100 MiB: two ranges of the default 64 MiB; the rest whole files spread over the lanes.
    writeFileSync(join(src, 'ibdata1'), randomBytes(100 * MiB));
    for (let i = 0; i < 6; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(6 * MiB));
    for (let i = 0; i < 40; i += 1) writeFileSync(join(src, 'shop', `s${i}.frm`), randomBytes(1000 + i));
    mkdirSync(join(dir, 'dst'));
    controller = await createController({ dataDir: join(dir, 'controller'), adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, plugins: [createSeedPlugin()] });
    client = new ApiClient({ baseUrl: controller.url, token: ADMIN_TOKEN });
    startAgent({ controllerUrl: controller.wsUrl, token: AGENT_TOKEN, id: 'src', config: { mysql: { datadir: src, ...serviceCommands(join(dir, 'src.running')) } } });
    startAgent({ controllerUrl: controller.wsUrl, token: AGENT_TOKEN, id: 'dst', config: { mysql: { datadir: join(dir, 'dst'), ...serviceCommands(join(dir, 'dst.running')) } } });
    await vi.waitFor(
      async () => {
        for (const id of ['src', 'dst']) {
          const agent = await client.agent(id);
          expect(agent.connected).toBe(true);
          expect(agent.facts?.cpus).toBeGreaterThan(0);
        }
      },
      { timeout: 60_000, interval: 100 },
    );
  }, 90_000);

  afterAll(async () => {
    await stopAllAgents();
    await controller?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function steps(seedId: string): Promise<StepJson[]> {
    return (await client.raw('GET', `/api/operations?seed=${seedId}&limit=500`)).body as StepJson[];
  }

  it('resumes only the lane whose stream was cut, and verifies', async () => {
    // Throttled so the cut lands mid-way on any machine: 32 MiB/s in all, 8 per lane.
    const created = (await client.raw('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', lanes: 4, maxBytesPerSec: 32 * MiB })).body as { seed: { id: string; lanes: number } };
    expect(created.seed.lanes).toBe(4);
    const id = created.seed.id;

    // Lane 2's first stream, once a few MiB went through it.
    let cut: StepJson | undefined;
    await vi.waitFor(
      async () => {
        cut = (await steps(id)).find((s) => s.op === 'seed-send' && s.params.lane?.index === 2 && s.state === 'running');
        expect(cut).toBeDefined();
        expect(controller.deps.hub.relay.bytesRelayed(cut!.params.stream!)).toBeGreaterThan(4 * MiB);
      },
      { timeout: 60_000, interval: 50 },
    );
    controller.deps.hub.relay.close(cut!.params.stream!);

    let seed!: { state: string; error: unknown; lanes: number; result: { files: number; bytes: number; attempts: number } | null };
    await vi.waitFor(
      async () => {
        seed = (await client.raw('GET', `/api/seeds/${id}`)).body as typeof seed;
        expect(['succeeded', 'failed', 'aborted']).toContain(seed.state);
      },
      { timeout: 120_000, interval: 200 },
    );
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.result).toMatchObject({ files: 47, bytes: 136 * MiB + 40 * 1000 + 780, attempts: 2 });

    const sends = (await steps(id)).filter((s) => s.op === 'seed-send');
    const byLane = (lane: number): StepJson[] => sends.filter((s) => s.params.lane?.index === lane);
    expect([0, 1, 3].map((lane) => byLane(lane).length)).toEqual([1, 1, 1]);
    expect(byLane(2)).toHaveLength(2);
    expect(byLane(2)[1]!.params.offset).toBeGreaterThan(0);
    // Both agents offer BLAKE3, so every step hashed with it, the resumed lane's too.
    const transferSteps = (await steps(id)).filter((s) => s.op === 'seed-send' || s.op === 'seed-receive');
    expect(transferSteps.map((s) => s.params.contentHash)).toEqual(transferSteps.map(() => 'blake3'));

    expect(digestTree(join(dir, 'dst'))).toEqual(digestTree(join(dir, 'src')));
    expect(existsSync(join(dir, 'dst', INCOMPLETE_MARKER))).toBe(false);
    const audit = (await client.raw('GET', '/api/audit?limit=200')).body as Array<{ action: string; message: string | null }>;
    expect(audit.filter((a) => a.action === 'seed.transfer.interrupted').map((a) => a.message)).toEqual([expect.stringMatching(/^lane 2: SEEDWIRE_DISCONNECTED/)]);
  }, 180_000);
});
