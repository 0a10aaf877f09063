/**
 * Every agent-side step of a seed is an operation linked to it: GET /api/operations?seed=ID lists
 * them in the order they ran, with agent, op, state and exit code; each keeps its command output;
 * the audit names them; a failing step's own words are in its output and in the seed's error.
 * Real controller and agent processes; the "MySQL" service is a state file whose commands talk.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../../client/api.js';
import type { Operation } from '../../server-stub/ops/types.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { seedApi } from '../helpers/seed-api.js';

const TOKEN = 'steps-token';

/** Service commands that say what they do on stderr, so their words can be found in a step's output. */
function serviceCommands(name: string, stateFile: string, startFails: boolean): Record<string, string> {
  // While `<stateFile>.slow` exists, a start takes a while and counts its runs in `<stateFile>.starts`.
  const slow = `if [ -f ${stateFile}.slow ]; then echo run >> ${stateFile}.starts; sleep 8; fi`;
  return {
    startCommand: startFails ? `echo "${name}: port 3306 is taken by another server" >&2; exit 3` : `echo "${name}: starting" >&2; ${slow}; touch ${stateFile}`,
    stopCommand: `echo "${name}: stopping" >&2; rm -f ${stateFile}`,
    statusCommand: `test -f ${stateFile}`,
  };
}

describe('seed steps as operations', () => {
  let dir: string;
  let controller: RunningController;
  const { api, agentsReady, seedUntilDone } = seedApi(() => controller);
  const client = (): ApiClient => new ApiClient({ baseUrl: controller.url, token: controller.adminToken });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-steps-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 3; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(256 * 1024));
    mkdirSync(join(dir, 'dst'));
    mkdirSync(join(dir, 'bad'));
    writeFileSync(join(dir, 'src.running'), '');

    controller = await startController({ agentToken: TOKEN });
    const agent = (id: string, datadir: string, startFails = false): void => {
      startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id, config: { mysql: { datadir, ...serviceCommands(id, join(dir, `${id}.running`), startFails) } } });
    };
    agent('src', src);
    agent('dst', join(dir, 'dst'));
    agent('bad', join(dir, 'bad'), true);
    await agentsReady(['src', 'dst', 'bad']);
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists a cold seed\'s steps in order, each with its agent, state, exit code and output, and audits them', async () => {
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', lanes: 1 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    const seed = await seedUntilDone(id);
    expect(seed.state).toBe('succeeded');

    const steps = (await api<Operation[]>('GET', `/api/operations?seed=${id}`)).body;
    expect(steps.map((s) => [s.agentId, s.op, s.id])).toEqual([
      ['src', 'mysql-status', `${id}.prepare-source.status`],
      ['src', 'mysql-stop', `${id}.prepare-source.stop`],
      ['dst', 'seed-prepare-target', `${id}.prepare-target`],
      ['dst', 'seed-receive', `${id}.receive.1`],
      ['src', 'seed-send', `${id}.send.1`],
      ['dst', 'seed-finalize-target', `${id}.finalize-target`],
      ['src', 'mysql-start', `${id}.cleanup-source.start`],
    ]);
    for (const step of steps) {
      expect(step).toMatchObject({ state: 'succeeded', seedId: id, actor: `seed:${id}`, error: null });
      expect(step).toHaveProperty('exitCode');
      expect(step.endedAt).not.toBeNull();
    }
    // The steps' own command output, through the same output endpoint as any operation.
    expect(await client().outputText(`${id}.prepare-source.stop`)).toContain('src: stopping');
    const finalize = await client().outputText(`${id}.finalize-target`);
    expect(finalize).toContain('$ echo "dst: starting"');
    expect(finalize).toContain('dst: starting');
    expect(await client().outputText(`${id}.cleanup-source.start`)).toContain('src: starting');

    // The filter combines with ?agent=, and the typed client asks the same.
    const onSource = await client().operations({ seed: id, agent: 'src' });
    expect(onSource.map((s) => s.op)).toEqual(['mysql-status', 'mysql-stop', 'seed-send', 'mysql-start']);
    expect(await client().operations({ seed: 'seed-none' })).toEqual([]);

    const audit = (await api<Array<{ actor: string; action: string; outcome: string; params: { operationId?: string; seedId?: string; stage?: string } | null }>>('GET', '/api/audit?limit=500')).body;
    for (const step of steps) {
      const rows = audit.filter((a) => a.params?.operationId === step.id);
      expect(rows.map((a) => a.outcome).sort()).toEqual(['started', 'succeeded']);
      for (const row of rows) expect(row).toMatchObject({ actor: `seed:${id}`, action: `op:${step.op}`, params: { seedId: id } });
    }
    expect(audit.find((a) => a.params?.operationId === `${id}.receive.1` && a.outcome === 'started')?.params?.stage).toBe('transfer');
  });

  it('a failing step keeps its own words in its output and in the seed\'s error', async () => {
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'bad', method: 'cold' });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    const seed = await seedUntilDone(id);
    expect(seed.state).toBe('failed');
    expect(seed.error?.code).toBe('SEEDWIRE_COMMAND_FAILED');
    expect(seed.error?.message).toContain('bad: port 3306 is taken by another server');

    const steps = await client().operations({ seed: id });
    const finalize = steps.find((s) => s.id === `${id}.finalize-target`);
    expect(finalize).toMatchObject({ agentId: 'bad', op: 'seed-finalize-target', state: 'failed', exitCode: 3, error: { code: 'SEEDWIRE_COMMAND_FAILED' } });
    expect(finalize?.error?.message).toContain('bad: port 3306 is taken by another server');
    expect(await client().outputText(`${id}.finalize-target`)).toContain('bad: port 3306 is taken by another server');
    // The failure's cleanup ran as steps of the same seed, after it.
    const ops = steps.map((s) => s.op);
    expect(ops.indexOf('mysql-start')).toBeGreaterThan(ops.indexOf('seed-finalize-target'));
    expect(ops).toContain('seed-cleanup-target');
  });

  it('a controller SIGKILL mid-step: the restarted controller re-attaches to the same operation; the step runs once', async () => {
    const starts = join(dir, 'dst.running.starts');
    writeFileSync(join(dir, 'dst.running.slow'), '');
    rmSync(join(dir, 'dst.running'), { force: true }); // stopped, as a seed's target must be
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', lanes: 1 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    const finalizeId = `${id}.finalize-target`;
    // Killed as soon as the step runs, its first words perhaps still on their way: what the agent
    // sent and the dead controller did not store is sent again (docs/reliability.md, "Output in flight").
    await vi.waitFor(
      async () => {
        const op = await api<Operation>('GET', `/api/operations/${finalizeId}`);
        expect(op.body.state).toBe('running');
        expect(readFileSync(starts, 'utf8')).toBe('run\n');
      },
      { timeout: 60_000, interval: 100 },
    );
    await controller.kill();
    controller = await controller.restart();

    const seed = await seedUntilDone(id);
    expect(seed.state).toBe('succeeded');
    const steps = await client().operations({ seed: id });
    expect(steps.filter((s) => s.op === 'seed-finalize-target').map((s) => [s.id, s.state])).toEqual([[finalizeId, 'succeeded']]);
    expect(new Set(steps.map((s) => s.id)).size).toBe(steps.length);
    // The start command ran once: the new controller's call joined the one the agent kept running.
    expect(readFileSync(starts, 'utf8')).toBe('run\n');
    // Whole and once.
    expect((await client().outputText(finalizeId)).match(/^dst: starting$/gm)).toHaveLength(1);
  });

  it('a graceful controller restart mid-step leaves the step running on the agent; the next controller finishes the same operation', async () => {
    const starts = join(dir, 'dst.running.starts');
    rmSync(starts, { force: true });
    writeFileSync(join(dir, 'dst.running.slow'), '');
    rmSync(join(dir, 'dst.running'), { force: true });
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', lanes: 1 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    const finalizeId = `${id}.finalize-target`;
    await vi.waitFor(
      async () => {
        expect((await api<Operation>('GET', `/api/operations/${finalizeId}`)).body.state).toBe('running');
        expect(readFileSync(starts, 'utf8')).toBe('run\n');
      },
      { timeout: 60_000, interval: 100 },
    );
    await controller.stop(); // SIGTERM: the controller drains; the step is not canceled on the agent
    controller = await controller.restart();

    const seed = await seedUntilDone(id);
    expect(seed.state).toBe('succeeded');
    const finalize = (await client().operations({ seed: id })).filter((s) => s.op === 'seed-finalize-target');
    expect(finalize.map((s) => [s.id, s.state])).toEqual([[finalizeId, 'succeeded']]);
    expect(readFileSync(starts, 'utf8')).toBe('run\n');
  });

  it('still refuses the internal seed-* operations from the API', async () => {
    const refused = await api<{ error: { code: string } }>('POST', '/api/agents/dst/ops/seed-cleanup-target', { params: { seedId: 'x' } });
    expect(refused.body.error.code).toBe('SEEDWIRE_OP_UNKNOWN');
  });
});
