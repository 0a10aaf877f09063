/**
 * A server started on the target while a seed is being received stops the seed: the target agent
 * re-checks its datadir guard while receiving, fails the receive naming why, and the cleanup
 * leaves the target as it is (the guard refuses there too) and says so in the audit. Real
 * controller and agent processes; the "MySQL" service is a state file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { seedApi } from '../helpers/seed-api.js';
import { serviceCommands } from '../helpers/tree.js';

const TOKEN = 'midway-token';

describe('a target server started during the transfer', () => {
  let dir: string;
  let controller: RunningController;
  const { api, agentsReady, seedUntilDone } = seedApi(() => controller);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-midway-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 4; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(4 * 1024 * 1024));
    mkdirSync(join(dir, 'dst'));
    writeFileSync(join(dir, 'src.running'), '');

    controller = await startController({ agentToken: TOKEN });
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'src', config: { mysql: { datadir: src, ...serviceCommands(join(dir, 'src.running')) } } });
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'dst', config: { mysql: { datadir: join(dir, 'dst'), ...serviceCommands(join(dir, 'dst.running')) } } });
    await agentsReady(['src', 'dst']);
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stops the seed with the guard\'s refusal; the cleanup leaves the target as it is and says why', async () => {
    // 512 KiB/s: the 16 MiB take 32 s, well past the guard's second complete re-check (10 s after
    // its first), even on a loaded machine where spawning the status command takes seconds.
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', maxBytesPerSec: 512 * 1024 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    await vi.waitFor(
      async () => {
        const s = (await api<{ stage: string; bytesDone: number }>('GET', `/api/seeds/${id}`)).body;
        expect(s.stage).toBe('transfer');
        expect(s.bytesDone).toBeGreaterThan(0);
      },
      { timeout: 60_000, interval: 100 },
    );
    writeFileSync(join(dir, 'dst.running'), ''); // "MySQL" starts on the target

    const seed = await seedUntilDone(id);
    expect(seed.state).toBe('failed');
    expect(seed.stages.find((s) => s.name === 'transfer')?.state).toBe('failed');
    expect(seed.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(seed.error?.message).toMatch(/^refusing to keep receiving the seed into .*dst: mysql\.statusCommand reports MySQL running \(exit 0\)/);
    // Well before the whole 16 MiB at 512 KiB/s went across.
    expect(seed.bytesDone).toBeLessThan(16 * 1024 * 1024);

    // The seed had emptied the target (its marker says so), but a server is on it now: nothing more is deleted.
    expect(readFileSync(join(dir, 'dst', INCOMPLETE_MARKER), 'utf8')).toBe(id);
    const audit = (await api<Array<{ actor: string; action: string; message: string | null }>>('GET', '/api/audit?limit=100')).body;
    const cleanup = audit.find((a) => a.actor === `seed:${id}` && a.action === 'seed.cleanup.target');
    expect(cleanup?.message).toMatch(/^target left as it is: refusing to clean up the seed in .*mysql\.statusCommand reports MySQL running/);
    // The source was started again by the cleanup.
    expect(existsSync(join(dir, 'src.running'))).toBe(true);
  });
});
