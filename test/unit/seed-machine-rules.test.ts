/**
 * The seed machine's rules on scripted agents (test/helpers/memory-hub.ts): the transfer's
 * attempts limit, the precheck refusals word for word, method and compression choice, and an
 * agent answer of the wrong shape.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Facts } from '../../shared/frames.js';
import type { SeedMethodName } from '../../server-stub/seed/methods/index.js';
import type { SeedRequest } from '../../server-stub/seed/prechecks.js';
import { answer, dropLinkAfter, fail, hang, type TransferScript } from '../helpers/memory-hub.js';
import { createSeedWorld, settled, SIZE, type SeedWorld } from '../helpers/seed-world.js';

const worlds: SeedWorld[] = [];
function world(options: Parameters<typeof createSeedWorld>[0] = {}): SeedWorld {
  const w = createSeedWorld(options);
  worlds.push(w);
  return w;
}
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.dispose();
});

async function runSeed(w: SeedWorld, request: Partial<SeedRequest> = {}) {
  const created = await w.machine.create({ source: 'src', target: 'dst', ...request });
  return settled(w, created.id);
}

describe('seed machine: transfer attempts', () => {
  const chunk = 64 * 1024;

  it('five fruitless attempts in a row fail the seed with SEEDWIRE_DISCONNECTED', async () => {
    const w = world({ method: 'cold', transfer: { interrupt: () => ({ at: 0, then: 'drop' }) } });
    const seed = await runSeed(w);
    expect(seed.state).toBe('failed');
    expect(seed.attempts).toBe(5);
    expect(seed.error).toEqual({ code: 'SEEDWIRE_DISCONNECTED', message: 'transfer made no progress in 5 attempts: scripted link drop at byte 0' });
    expect(w.audits.filter((a) => a.action === 'seed.transfer.interrupted')).toHaveLength(4);
    expect(w.target.ops().at(-1)).toBe('seed-cleanup-target');
  });

  it('a link that drops under the send counts as an attempt, and the next one resumes', async () => {
    const w = world({ method: 'cold', transfer: { chunk } });
    let drops = 0;
    const send = w.source.behaviours.get('seed-send')!;
    w.source.on('seed-send', (params, ctx) => {
      if (drops++ < 2) {
        ctx.hub.disconnect('src');
        queueMicrotask(() => ctx.hub.connect('src'));
        return hang()(params, ctx);
      }
      return send(params, ctx);
    });
    const seed = await runSeed(w);
    expect(seed.state).toBe('succeeded');
    expect(seed.attempts).toBe(3);
    expect(w.target.runs.filter((r) => r.op === 'seed-receive').map((r) => r.params['resume'])).toEqual([false, true, true]);
  });

  it('an attempt that makes progress resets the count', async () => {
    // Attempts 1-4 and 6-9 get nowhere, 5 gets one chunk across, 10 completes: ten attempts, no failure.
    const interrupt: TransferScript['interrupt'] = (attempt) => (attempt === 5 ? { at: chunk, then: 'drop' } : attempt < 10 ? { at: attempt > 5 ? chunk : 0, then: 'drop' } : null);
    const w = world({ method: 'cold', transfer: { chunk, interrupt } });
    const seed = await runSeed(w);
    expect(seed.state).toBe('succeeded');
    expect(seed.attempts).toBe(10);
    expect(w.transfer.sendOffsets).toEqual([0, 0, 0, 0, 0, chunk, chunk, chunk, chunk, chunk]);
    expect(seed.result).toMatchObject({ attempts: 10, bytes: SIZE.bytes });
  });

  it('a backup stream starts over from 0 on every attempt', async () => {
    const w = world({ method: 'backup', transfer: { chunk, interrupt: (attempt) => (attempt < 3 ? { at: attempt * chunk, then: 'drop' } : null) } });
    const seed = await runSeed(w, { method: 'backup' });
    expect(seed).toMatchObject({ method: 'backup', state: 'succeeded', attempts: 3 });
    expect(w.transfer.sendOffsets).toEqual([0, 0, 0]);
    const receives = w.target.runs.filter((r) => r.op === 'seed-receive').map((r) => r.params);
    expect(receives.map((p) => p['resume'])).toEqual([false, false, false]);
    expect(receives[0]).toMatchObject({ format: 'stream', backupTool: 'mariabackup' });
    expect(w.hub.calls.items.filter((c) => c.op === 'seed-send').map((c) => c.params['source'])).toEqual([{ kind: 'backup' }, { kind: 'backup' }, { kind: 'backup' }]);
    expect(seed.stages.find((s) => s.name === 'finalize-target')?.message).toBe('backup prepared (mariabackup --prepare); marker removed; MySQL running');
  });

  it('backup attempts that get no further than an earlier one count as fruitless', async () => {
    const w = world({ method: 'backup', transfer: { chunk, interrupt: () => ({ at: chunk, then: 'drop' }) } });
    const seed = await runSeed(w, { method: 'backup' });
    expect(seed.method).toBe('backup');
    expect(seed.error?.code).toBe('SEEDWIRE_DISCONNECTED');
    expect(seed.attempts).toBe(6); // the first got a chunk across; five more got no further
  });

  it('tells the target the most it may receive: the size plus its margin', async () => {
    const w = world({ method: 'snapshot' });
    expect((await runSeed(w)).method).toBe('snapshot');
    const receive = w.hub.calls.items.find((c) => c.op === 'seed-receive');
    expect(receive?.params).toMatchObject({ resume: false, maxBytes: Math.ceil(SIZE.bytes * 1.05) + 64 * 1024 * 1024 });
    // A snapshot seed is a tree stream (the default the params schema fills in), not a backup stream.
    expect(receive?.params).toMatchObject({ format: 'tree' });
    expect(receive?.params).not.toHaveProperty('backupTool');
    expect(w.hub.calls.items.find((c) => c.op === 'seed-send')?.params).toMatchObject({ source: { kind: 'snapshot' }, offset: 0, compression: 'none' });
  });
});

describe('seed machine: precheck refusals', () => {
  const cases: Array<{ name: string; setup?: (w: SeedWorld) => void; world?: Parameters<typeof createSeedWorld>[0]; request?: Partial<SeedRequest>; code?: string; message: string }> = [
    { name: 'same agent', request: { target: 'src' }, message: 'source and target are the same agent' },
    { name: 'unknown source', request: { source: 'nope' }, message: 'source agent nope is unknown' },
    { name: 'unknown target', request: { target: 'nope' }, message: 'target agent nope is unknown' },
    { name: 'source offline', setup: (w) => w.hub.disconnect('src'), message: 'source agent src is not connected' },
    { name: 'target offline', setup: (w) => w.hub.disconnect('dst'), message: 'target agent dst is not connected' },
    {
      name: 'no facts yet',
      setup: (w) => {
        w.target.facts = null;
      },
      message: 'target agent dst has not reported its facts yet',
    },
    { name: 'source without mysql', world: { source: { mysqlConfigured: false } }, message: 'source src has no mysql section in its agent config' },
    { name: 'target without mysql', world: { target: { mysqlConfigured: false } }, message: 'target dst has no mysql section in its agent config' },
    { name: 'backup without a tool', request: { method: 'backup' }, message: 'source src has no backup section in its agent config (set backup.tool)' },
    {
      name: 'backup of a stopped server',
      world: { method: 'backup' },
      request: { method: 'backup' },
      setup: (w) => {
        w.sourceRunning = false;
      },
      message: 'MySQL is not running on the source src; a hot backup needs it running (use method cold for a stopped server)',
    },
    { name: 'snapshot without a backend', request: { method: 'snapshot' }, message: 'source src has no snapshot backend (set snapshot.backend in its agent config); use method cold' },
    {
      name: 'snapshot already mounted',
      world: { method: 'snapshot', source: { mounted: { name: 'old', mountPoint: '/mnt/seedwire', dataPath: '/mnt/seedwire/mysql' } } },
      message: 'source src has snapshot old mounted; unmount it first',
    },
    { name: 'target running', setup: (w) => w.target.on('mysql-status', answer({ running: true })), message: 'MySQL is running on the target dst; stop it first' },
    {
      name: 'no space',
      world: { target: { datadirBytes: 10 * 1024 * 1024 } },
      setup: (w) => w.target.on('mysql-datadir-available-space', answer({ bytes: 20 * 1024 * 1024 })),
      code: 'SEEDWIRE_NO_SPACE',
      message: 'target dst has 30.0 MiB available (free plus its current datadir) but the seed needs 65.1 MiB (1.0 MiB plus margin)',
    },
  ];

  it.each(cases)('$name', async ({ setup, world: options, request, code, message }) => {
    const w = world(options);
    setup?.(w);
    await expect(w.machine.create({ source: 'src', target: 'dst', ...request })).rejects.toMatchObject({ code: code ?? 'SEEDWIRE_PRECHECK_FAILED', message });
    expect(await w.machine.list()).toEqual([]);
    expect(w.audits).toEqual([expect.objectContaining({ action: 'seed.create', outcome: 'refused', message: `${code ?? 'SEEDWIRE_PRECHECK_FAILED'}: ${message}` })]);
    // Prechecks only ask: nothing on either host changed.
    const changing = ['mysql-stop', 'mysql-start', 'create-snapshot', 'seed-prepare-target'];
    expect([...w.source.ops(), ...w.target.ops()].filter((op) => changing.includes(op))).toEqual([]);
  });

  it('an agent already in a seed is refused as either side', async () => {
    const w = world({ method: 'cold' });
    w.target.on('seed-prepare-target', hang());
    const first = await w.machine.create({ source: 'src', target: 'dst' });
    await expect(w.machine.create({ source: 'src', target: 'dst' })).rejects.toMatchObject({ message: `source agent src is already in seed ${first.id}` });
    await expect(w.machine.create({ source: 'dst', target: 'src' })).rejects.toMatchObject({ message: `source agent dst is already in seed ${first.id}` });
    await w.machine.abort(first.id);
  });

  it('a precheck question the agent cannot answer refuses with its error', async () => {
    const w = world();
    w.source.on('seed-source-size', fail('SEEDWIRE_COMMAND_FAILED', 'du failed'));
    await expect(w.machine.create({ source: 'src', target: 'dst' })).rejects.toMatchObject({ code: 'SEEDWIRE_COMMAND_FAILED', message: 'du failed' });
  });

  it('a closed machine refuses new seeds', async () => {
    const w = world();
    await w.machine.close();
    await expect(w.machine.create({ source: 'src', target: 'dst' })).rejects.toMatchObject({ code: 'SEEDWIRE_SHUTTING_DOWN' });
  });
});

describe('seed machine: method and compression', () => {
  it.each([
    ['btrfs', 'snapshot'],
    ['lvm', 'snapshot'],
    ['none', 'cold'],
  ] satisfies Array<[Facts['snapshotBackend'], SeedMethodName]>)('a source with snapshot backend %s gets method %s by default', async (backend, method) => {
    const w = world({ source: { snapshotBackend: backend } });
    const seed = await runSeed(w);
    expect(seed.method).toBe(method);
    expect(seed.state).toBe('succeeded');
  });

  it.each([
    ['dc1', 'dc2', 'auto', 'zstd', 'remote'],
    ['dc1', 'dc1', 'auto', 'none', 'local'],
    [null, 'dc2', 'auto', 'none', 'local'],
    ['dc1', 'dc2', 'gzip', 'gzip', 'remote'],
    ['dc1', 'dc1', 'zstd', 'zstd', 'local'],
  ] as const)('source in %s, target in %s, compression %s: %s (%s)', async (sourceDc, targetDc, requested, effective, where) => {
    const w = world({ source: { datacenter: sourceDc }, target: { datacenter: targetDc } });
    const seed = await runSeed(w, { compression: requested });
    expect(seed.compression).toBe(requested);
    expect(seed.effectiveCompression).toBe(effective);
    expect(seed.stages[0]?.message).toBe(`cold seed of 1.0 MiB in 3 files; ${where} datacenter; compression ${effective}; 1 lane`);
    expect(w.hub.calls.items.find((c) => c.op === 'seed-send')?.params['compression']).toBe(effective);
  });
});

describe('seed machine: link drops outside the transfer', () => {
  it('a step whose answer is cut off by a link drop gets it after the agent redials; it runs once', async () => {
    const w = world({ method: 'cold' });
    w.source.on('mysql-stop', dropLinkAfter(w.source.behaviours.get('mysql-stop')!));
    w.target.on('seed-finalize-target', dropLinkAfter(w.target.behaviours.get('seed-finalize-target')!));
    const seed = await runSeed(w);
    expect(seed.state).toBe('succeeded');
    expect(w.source.ops().filter((op) => op === 'mysql-stop')).toHaveLength(1);
    expect(w.target.ops().filter((op) => op === 'seed-finalize-target')).toHaveLength(1);
  });

  it('an agent that is away longer than the reconnect wait when its step comes fails the seed with SEEDWIRE_AGENT_OFFLINE', async () => {
    const w = world({ method: 'cold', reconnectWaitMs: 1_000 });
    const stop = w.source.behaviours.get('mysql-stop')!;
    w.source.on('mysql-stop', (params, ctx) => {
      ctx.hub.disconnect('dst');
      return stop(params, ctx);
    });
    const created = await w.machine.create({ source: 'src', target: 'dst' });
    await w.published.waitFor((seed) => seed.id === created.id && seed.stages.find((s) => s.name === 'prepare-target')?.state === 'failed', { what: 'prepare-target to fail' });
    w.hub.connect('dst'); // back for the cleanup, which waits longer for the target
    const seed = await settled(w, created.id);
    expect(seed.error).toEqual({ code: 'SEEDWIRE_AGENT_OFFLINE', message: 'agent dst did not reconnect within 1 s' });
    expect(w.sourceRunning).toBe(true);
    expect(w.target.ops().at(-1)).toBe('seed-cleanup-target');
  });
});

describe('seed machine: a bad agent answer', () => {
  it('a result of the wrong shape fails the stage with SEEDWIRE_PROTOCOL naming the op and field', async () => {
    const w = world({ method: 'cold' });
    w.target.on('seed-prepare-target', answer({ free: 1 }));
    const seed = await runSeed(w);
    expect(seed.state).toBe('failed');
    expect(seed.error?.code).toBe('SEEDWIRE_PROTOCOL');
    expect(seed.error?.message).toMatch(/^agent dst answered 'seed-prepare-target' with a bad result at freeBytes: /);
    expect(seed.stages.find((s) => s.name === 'prepare-target')?.state).toBe('failed');
    expect(w.target.ops().at(-1)).toBe('seed-cleanup-target');
  });

  it('a bad answer in the transfer is not a link error: no second attempt', async () => {
    const w = world({ method: 'cold' });
    const send = w.source.behaviours.get('seed-send')!;
    w.source.on('seed-send', async (params, ctx) => ({ ...((await send(params, ctx)) as object), digest: 42 }));
    const seed = await runSeed(w);
    expect(seed.error?.code).toBe('SEEDWIRE_PROTOCOL');
    expect(seed.attempts).toBe(1);
  });
});
