/**
 * The seed machine's stage loop over every stage and every method, on scripted agents
 * (test/helpers/memory-hub.ts): a failure at every agent call, an abort at every call, a
 * controller restart at every call. Each case checks the whole sequence of calls the agents saw,
 * so the cleanup's calls and their order are part of the expectation.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { toSeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { OpName } from '../../shared/ops.js';
import type { SeedMethodName } from '../../server-stub/seed/methods/index.js';
import { SEED_STAGES, type StageName } from '../../server-stub/seed/types.js';
import { fail, hang, type Behaviour } from '../helpers/memory-hub.js';
import { createSeedWorld, once, settled, SIZE, type SeedWorld } from '../helpers/seed-world.js';

/** Every agent call of a seed that succeeds, after the prechecks, in order (`agent:op`). */
const HAPPY: Record<SeedMethodName, string[]> = {
  cold: ['src:mysql-status', 'src:mysql-stop', 'dst:seed-prepare-target', 'dst:seed-receive', 'src:seed-send', 'dst:seed-finalize-target', 'src:mysql-start'],
  snapshot: ['src:create-snapshot', 'src:mount-snapshot', 'dst:seed-prepare-target', 'dst:seed-receive', 'src:seed-send', 'dst:seed-finalize-target', 'src:unmount-snapshot', 'src:remove-snapshot'],
  backup: ['dst:seed-prepare-target', 'dst:seed-receive', 'src:seed-send', 'dst:seed-finalize-target'],
};
const STAGE_OF: Record<string, StageName> = {
  'src:mysql-status': 'prepare-source',
  'src:mysql-stop': 'prepare-source',
  'src:create-snapshot': 'prepare-source',
  'src:mount-snapshot': 'prepare-source',
  'dst:seed-prepare-target': 'prepare-target',
  'dst:seed-receive': 'transfer',
  'src:seed-send': 'transfer',
  'dst:seed-finalize-target': 'finalize-target',
  'src:mysql-start': 'cleanup-source',
  'src:unmount-snapshot': 'cleanup-source',
  'src:remove-snapshot': 'cleanup-source',
};
const METHODS: SeedMethodName[] = ['cold', 'snapshot', 'backup'];
const stageIndex = (stage: StageName): number => SEED_STAGES.indexOf(stage);

/**
 * The calls the cleanup makes after the seed stopped at `call` (in `stage`): the source put back
 * (MySQL started only if the seed stopped it; the snapshot unmounted if mounted, then removed),
 * then the target, only once prepare-target was reached. `persistent`: the call fails again when
 * the cleanup repeats it (so a failed unmount leaves the removal undone).
 */
function expectedCleanup(method: SeedMethodName, stage: StageName, call: string, persistent: boolean): string[] {
  const source: string[] = [];
  if (method === 'cold' && call !== 'src:mysql-status') source.push('src:mysql-start');
  if (method === 'snapshot') {
    if (call === 'src:unmount-snapshot' && persistent) source.push('src:unmount-snapshot');
    else {
      const mounted = stageIndex(stage) > stageIndex('prepare-source') && call !== 'src:remove-snapshot';
      source.push(...(mounted ? ['src:unmount-snapshot'] : []), 'src:remove-snapshot');
    }
  }
  const target = stageIndex(stage) >= stageIndex('prepare-target') ? ['dst:seed-cleanup-target'] : [];
  return [...source, ...target];
}

function override(world: SeedWorld, call: string, behaviour: Behaviour, first = false): void {
  const [agent, op] = call.split(':') as [string, OpName];
  const scripted = agent === 'src' ? world.source : world.target;
  if (first) once(scripted, op, behaviour);
  else scripted.on(op, behaviour);
}

const worlds: SeedWorld[] = [];
function world(method: SeedMethodName): SeedWorld {
  const w = createSeedWorld({ method });
  worlds.push(w);
  return w;
}
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.dispose();
});

const points = METHODS.flatMap((method) => HAPPY[method].map((call) => ({ method, call, stage: STAGE_OF[call]! })));

describe('seed machine: a seed that succeeds', () => {
  it.each(METHODS)('%s: every stage succeeds, with the calls of its method in order', async (method) => {
    const w = world(method);
    const created = await w.machine.create({ source: 'src', target: 'dst', method });
    const mark = 0;
    const seed = await settled(w, created.id);
    expect(seed.state).toBe('succeeded');
    expect(seed.stages.map((s) => s.state)).toEqual(SEED_STAGES.map(() => 'succeeded'));
    expect(w.callsSince(mark).slice(-HAPPY[method].length)).toEqual(HAPPY[method]);
    expect(seed.result).toMatchObject({ files: 3, bytes: 1024 * 1024, attempts: 1, ...(method === 'backup' ? { backupTool: 'mariabackup' } : {}) });
    if (method === 'cold') expect(w.sourceRunning).toBe(true);
    if (method === 'snapshot') expect(w.source.facts?.snapshots).toEqual([]);
    const finalize = w.hub.calls.items.find((c) => c.op === 'seed-finalize-target');
    expect(finalize?.params['prepare']).toBe(method === 'backup' ? 'mariabackup' : undefined);
  });

  it('cold: a source whose MySQL was already stopped stays stopped, on success and after a failure', async () => {
    const ok = world('cold');
    ok.sourceRunning = false;
    const seed = await settled(ok, (await ok.machine.create({ source: 'src', target: 'dst' })).id);
    expect(seed.state).toBe('succeeded');
    expect(ok.source.ops()).not.toContain('mysql-stop');
    expect(ok.source.ops()).not.toContain('mysql-start');
    expect(seed.stages.find((s) => s.name === 'cleanup-source')?.message).toBe('nothing to clean up');

    const failed = world('cold');
    failed.sourceRunning = false;
    failed.target.on('seed-prepare-target', fail('SEEDWIRE_COMMAND_FAILED'));
    const second = await settled(failed, (await failed.machine.create({ source: 'src', target: 'dst' })).id);
    expect(second.state).toBe('failed');
    expect(failed.source.ops()).toEqual(['seed-source-size', 'mysql-status']);
    expect(failed.sourceRunning).toBe(false);
  });
});

describe('seed machine: a failure at every call of every stage', () => {
  it.each(points)('$method: $call fails in $stage', async ({ method, call, stage }) => {
    const w = world(method);
    override(w, call, fail('SEEDWIRE_COMMAND_FAILED', `${call} broke`));
    const created = await w.machine.create({ source: 'src', target: 'dst', method });
    const seed = await settled(w, created.id);
    expect(seed.state).toBe('failed');
    expect(seed.error).toEqual({ code: 'SEEDWIRE_COMMAND_FAILED', message: `${call} broke` });
    expect(seed.stages.find((s) => s.name === stage)).toMatchObject({ state: 'failed', message: `SEEDWIRE_COMMAND_FAILED: ${call} broke` });
    const prefix = HAPPY[method].slice(0, HAPPY[method].indexOf(call) + 1);
    expect(w.callsSince(0).slice(-(prefix.length + expectedCleanup(method, stage, call, true).length))).toEqual([...prefix, ...expectedCleanup(method, stage, call, true)]);
    expect(w.audits.at(-1)).toMatchObject({ action: 'seed.finish', outcome: 'failed' });
  });

  it.each(METHODS)('%s: verify fails when the two sides disagree', async (method) => {
    const w = createSeedWorld({ method, transfer: { sent: { digest: 'e'.repeat(64) } } });
    worlds.push(w);
    const seed = await settled(w, (await w.machine.create({ source: 'src', target: 'dst', method })).id);
    expect(seed.error?.code).toBe('SEEDWIRE_VERIFY_FAILED');
    expect(seed.stages.find((s) => s.name === 'verify')?.state).toBe('failed');
    const prefix = HAPPY[method].slice(0, HAPPY[method].indexOf('src:seed-send') + 1);
    const cleanup = expectedCleanup(method, 'verify', 'verify', true);
    expect(w.callsSince(0).slice(-(prefix.length + cleanup.length))).toEqual([...prefix, ...cleanup]);
  });

  it.each(['SEEDWIRE_OP_REFUSED', 'SEEDWIRE_NO_SPACE'] satisfies ErrorCode[])('prepare-target refusing with %s leaves the target untouched: no target cleanup', async (code) => {
    const w = world('cold');
    w.target.on('seed-prepare-target', fail(code, 'MySQL is in use'));
    const seed = await settled(w, (await w.machine.create({ source: 'src', target: 'dst' })).id);
    expect(seed.error?.code).toBe(code);
    expect(w.target.ops()).not.toContain('seed-cleanup-target');
    expect(w.source.ops().at(-1)).toBe('mysql-start');
    expect(w.audits.find((a) => a.action === 'seed.cleanup.target')?.message).toBe(`target left as it is: prepare-target refused (${code}) before deleting anything`);
  });

  it('a cleanup step that fails is audited and the other side is still cleaned', async () => {
    const w = world('cold');
    w.target.on('seed-finalize-target', fail('SEEDWIRE_COMMAND_FAILED'));
    w.source.on('mysql-start', fail('SEEDWIRE_COMMAND_FAILED', 'start refused'));
    const seed = await settled(w, (await w.machine.create({ source: 'src', target: 'dst' })).id);
    expect(seed.state).toBe('failed');
    expect(w.audits.find((a) => a.action === 'seed.cleanup.source')).toMatchObject({ outcome: 'failed', message: 'SEEDWIRE_COMMAND_FAILED: start refused' });
    expect(w.target.ops().at(-1)).toBe('seed-cleanup-target');
  });
});

describe('seed machine: abort at every call of every stage', () => {
  it.each(points)('$method: abort while $call runs ($stage)', async ({ method, call, stage }) => {
    const w = world(method);
    override(w, call, hang(), true);
    const created = await w.machine.create({ source: 'src', target: 'dst', method });
    const [agentId, op] = call.split(':');
    await w.hub.calls.waitFor((c) => c.agentId === agentId && c.op === op, { what: call });
    const aborted = await w.machine.abort(created.id);
    expect(aborted.state).toBe('aborted');
    expect(aborted.error?.code).toBe('SEEDWIRE_CANCELED');
    expect(aborted.stages.find((s) => s.name === stage)?.state).toBe('failed');
    const prefix = HAPPY[method].slice(0, HAPPY[method].indexOf(call) + 1);
    const cleanup = expectedCleanup(method, stage, call, false);
    expect(w.callsSince(0).slice(-(prefix.length + cleanup.length))).toEqual([...prefix, ...cleanup]);
    if (method === 'cold' && call !== 'src:mysql-status') expect(w.sourceRunning).toBe(true);
    if (method === 'snapshot') expect(w.source.facts?.snapshots).toEqual([]);
    await expect(w.machine.abort(created.id)).rejects.toMatchObject({ code: 'SEEDWIRE_CONFLICT', message: `seed ${created.id} is already aborted` });
  });

  it('abort of a finished seed is a conflict; of an unknown seed, not found', async () => {
    const w = world('cold');
    const seed = await settled(w, (await w.machine.create({ source: 'src', target: 'dst' })).id);
    await expect(w.machine.abort(seed.id)).rejects.toMatchObject({ code: 'SEEDWIRE_CONFLICT', message: `seed ${seed.id} is already succeeded` });
    await expect(w.machine.abort('seed-nope')).rejects.toMatchObject({ code: 'SEEDWIRE_NOT_FOUND' });
  });
});

describe('seed machine: controller restart at every call of every stage', () => {
  it.each(points)('$method: restart while $call runs ($stage)', async ({ method, call, stage }) => {
    const half = SIZE.bytes / 2;
    const transfer = stage === 'transfer';
    // seed-send: half the bytes committed on the first attempt, then the controller goes away.
    const w = call === 'src:seed-send' ? createSeedWorld({ method, transfer: { interrupt: (attempt) => (attempt === 1 ? { at: half, then: 'hang' } : null) } }) : world(method);
    if (call === 'src:seed-send') worlds.push(w);
    const [agentId, op] = call.split(':') as [string, OpName];
    const agent = agentId === 'src' ? w.source : w.target;
    let open: () => void = () => undefined;
    if (call !== 'src:seed-send') {
      // The first run goes on on the agent until the test opens the gate, after the restart.
      const gate = new Promise<void>((resolve) => {
        open = resolve;
      });
      const later = agent.behaviours.get(op)!;
      once(agent, op, async (params, ctx) => {
        await Promise.race([gate, new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(toSeedwireError(ctx.signal.reason)), { once: true }))]);
        return later(params, ctx);
      });
    }
    const created = await w.machine.create({ source: 'src', target: 'dst', method });
    const before = await w.hub.calls.waitFor((c) => c.agentId === agentId && c.op === op, { what: call });
    if (call === 'src:seed-send') await vi.waitFor(() => expect(w.transfer.committed).toBe(half));

    const machine = await w.restart();
    expect((await machine.get(created.id))?.state).toBe('running');
    if (!transfer) {
      const again = await w.hub.calls.waitFor((c) => c.agentId === agentId && c.op === op, { what: `${call} re-sent` });
      expect(again.callId).toBe(before.callId); // the same id: the agent's ledger attaches to the run it still has
      open();
    }
    const seed = await settled(w, created.id);
    expect(seed.state).toBe('succeeded');

    // Stages that had succeeded are not redone: the new controller's calls start at the interrupted stage.
    const from = HAPPY[method].indexOf(transfer ? 'dst:seed-receive' : call);
    expect(w.callsSince(0)).toEqual(HAPPY[method].slice(from));
    if (!transfer) expect(agent.runs.filter((r) => r.callId === before.callId)).toHaveLength(1);
    expect(w.audits.filter((a) => a.action === 'seed.resume').map((a) => a.params)).toEqual([{ id: created.id, stage }]);
    if (transfer) {
      expect(seed.attempts).toBe(2);
      expect(w.target.runs.filter((r) => r.op === 'seed-receive').at(-1)?.params['resume']).toBe(method !== 'backup');
      if (call === 'src:seed-send') expect(w.transfer.sendOffsets).toEqual([0, method === 'backup' ? 0 : half]);
    }
  });
});
