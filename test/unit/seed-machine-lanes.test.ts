/**
 * The seed machine over several lanes, on scripted agents (test/helpers/memory-hub.ts): the lane
 * count chosen, each lane's own calls and resume, the fruitless rule per lane, abort and restart
 * with lanes, and the digest the target's finalize is given.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { combineLaneSummaries } from '../../shared/lanes.js';
import { CONTENT_HASH_BLAKE3_CAPABILITY } from '../../shared/ops.js';
import type { SeedRequest } from '../../server-stub/seed/prechecks.js';
import { createSeedWorld, settled, SIZE, type SeedWorld, type SeedWorldOptions } from '../helpers/seed-world.js';
import { waitFor } from '../helpers/wait.js';

const worlds: SeedWorld[] = [];
/** Both agents report `cpus` (agents that know lanes) unless the test says otherwise. */
function world(options: SeedWorldOptions = {}): SeedWorld {
  const w = createSeedWorld({ method: 'cold', ...options, source: { cpus: 8, ...options.source }, target: { cpus: 8, ...options.target } });
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

const chunk = 64 * 1024;

function laneCalls(w: SeedWorld, op: 'seed-send' | 'seed-receive'): Array<{ callId: string; lane: unknown; offset: unknown; resume: unknown }> {
  return w.hub.calls.items.filter((c) => c.op === op).map((c) => ({ callId: c.callId, lane: c.params['lane'], offset: c.params['offset'], resume: c.params['resume'] }));
}

describe('seed machine: how many lanes', () => {
  it.each([
    { what: 'min(4, CPUs) by default', source: { cpus: 8 }, target: { cpus: 8 }, request: {}, lanes: 4 },
    { what: 'fewer on a 2-CPU source', source: { cpus: 2 }, target: { cpus: 8 }, request: {}, lanes: 2 },
    { what: 'fewer on a 3-CPU target', source: { cpus: 8 }, target: { cpus: 3 }, request: {}, lanes: 3 },
    { what: 'one with an agent older than lanes', source: { cpus: undefined }, target: { cpus: 8 }, request: {}, lanes: 1 },
    { what: 'as asked', source: { cpus: 2 }, target: { cpus: 2 }, request: { lanes: 6 }, lanes: 6 },
  ])('$what', async ({ source, target, request, lanes }) => {
    const w = world({ source, target, transfer: { chunk } });
    const seed = await runSeed(w, request);
    expect(seed).toMatchObject({ state: 'succeeded', lanes });
    expect(seed.stages[0]?.message).toContain(`${lanes} lane${lanes > 1 ? 's' : ''}`);
  });

  it('a backup seed is one lane whatever is asked, and says so', async () => {
    const w = world({ method: 'backup', transfer: { chunk } });
    const seed = await runSeed(w, { method: 'backup', lanes: 4 });
    expect(seed).toMatchObject({ state: 'succeeded', lanes: 1 });
    expect(seed.stages[0]?.message).toContain('1 lane (lanes forced to 1 (a backup seed is one stream))');
    expect(laneCalls(w, 'seed-send').map((c) => c.lane)).toEqual([undefined]);
  });

  it('asking for lanes from an agent older than lanes is refused, naming it', async () => {
    const w = world({ target: { cpus: undefined } });
    await expect(w.machine.create({ source: 'src', target: 'dst', lanes: 2 })).rejects.toMatchObject({
      code: 'SEEDWIRE_BAD_PARAMS',
      message: 'lanes: the target agent dst is older than parallel lanes; ask for lanes 1 or upgrade it',
    });
  });
});

describe('seed machine: a transfer over lanes', () => {
  it('runs every lane as its own pair of steps and gives finalize the combined digest', async () => {
    const w = world({ transfer: { chunk } });
    const seed = await runSeed(w, { lanes: 3 });
    expect(seed.state).toBe('succeeded');
    const sends = laneCalls(w, 'seed-send');
    expect(sends.map((c) => c.lane)).toEqual(expect.arrayContaining([0, 1, 2].map((index) => ({ index, count: 3 }))));
    // Call ids name the lane: <seed>.lane<i>.<side>.<attempt>.
    expect(sends.map((c) => c.callId.replace(/\.\d+$/, '')).sort()).toEqual([0, 1, 2].map((i) => `${seed.id}.lane${i}.send`));
    expect(laneCalls(w, 'seed-receive').map((c) => c.callId.replace(/\.\d+$/, '')).sort()).toEqual([0, 1, 2].map((i) => `${seed.id}.lane${i}.receive`));
    const laneBytes = Math.ceil(SIZE.bytes / 3);
    const combined = combineLaneSummaries([0, 1, 2].map((i) => ({ files: i === 0 ? SIZE.files : 0, bytes: laneBytes, digest: `${i}`.padEnd(64, 'e') })));
    expect(seed.result).toMatchObject({ files: SIZE.files, bytes: 3 * laneBytes, digest: combined.digest, attempts: 1 });
    const finalize = w.hub.calls.items.find((c) => c.op === 'seed-finalize-target');
    expect(finalize?.params).toMatchObject({ digest: combined.digest, lanes: 3 });
    expect(seed.stages.find((s) => s.name === 'transfer')?.message).toContain('over 3 lanes in 1 attempt');
  });

  it('a lane whose link drops resumes from its own committed offset; the other lanes are not touched', async () => {
    const w = world({ transfer: { chunk, interruptLane: (lane, attempt) => (lane === 1 && attempt === 1 ? { at: 2 * chunk, then: 'drop' } : null) } });
    const seed = await runSeed(w, { lanes: 3 });
    expect(seed.state).toBe('succeeded');
    expect(w.transfer.lanes.get(0)?.sendOffsets).toEqual([0]);
    expect(w.transfer.lanes.get(1)?.sendOffsets).toEqual([0, 2 * chunk]);
    expect(w.transfer.lanes.get(2)?.sendOffsets).toEqual([0]);
    const lane1 = laneCalls(w, 'seed-receive').filter((c) => (c.lane as { index: number }).index === 1);
    expect(lane1.map((c) => c.resume)).toEqual([false, true]);
    expect(seed.result?.attempts).toBe(2);
    expect(w.audits.filter((a) => a.action === 'seed.transfer.interrupted').map((a) => a.message)).toEqual([expect.stringMatching(/^lane 1: SEEDWIRE_DISCONNECTED/)]);
  });

  it('the content hash is chosen once for the stage: every attempt of every lane hashes alike, whatever the agents look like later', async () => {
    // Lane 1's link drops at 2 chunks, and from then on the source is seen without BLAKE3 (an
    // attempt that chose from a dropped or older session). Chosen per attempt, the retry picked
    // SHA-256 while the target's receive state was BLAKE3, and the lane started over from 0.
    const w = world({
      transfer: {
        chunk,
        interruptLane: (lane, attempt) => {
          if (lane !== 1 || attempt !== 1) return null;
          w.source.capabilities = [];
          return { at: 2 * chunk, then: 'drop' };
        },
      },
    });
    for (const agent of [w.source, w.target]) agent.capabilities = [CONTENT_HASH_BLAKE3_CAPABILITY];
    const seed = await runSeed(w, { lanes: 2 });
    expect(seed.state).toBe('succeeded');
    expect(w.transfer.lanes.get(1)?.sendOffsets).toEqual([0, 2 * chunk]);
    const hashes = w.hub.calls.items.filter((c) => c.op === 'seed-receive' || c.op === 'seed-send').map((c) => c.params['contentHash']);
    expect(hashes).toHaveLength(6);
    expect(new Set(hashes)).toEqual(new Set(['blake3']));
  });

  it('SHA-256 (no contentHash param) when one of the agents does not offer BLAKE3', async () => {
    const w = world({ transfer: { chunk } });
    w.source.capabilities = [CONTENT_HASH_BLAKE3_CAPABILITY];
    const seed = await runSeed(w, { lanes: 2 });
    expect(seed.state).toBe('succeeded');
    const calls = w.hub.calls.items.filter((c) => c.op === 'seed-receive' || c.op === 'seed-send');
    expect(calls).toHaveLength(4);
    for (const call of calls) expect(call.params).not.toHaveProperty('contentHash');
  });

  it('a lane whose relay stream is closed under it (its data path lost) resumes alone', async () => {
    const w = world({ transfer: { chunk, interruptLane: (lane, attempt) => (lane === 1 && attempt === 1 ? { at: 3 * chunk, then: 'hang' } : null) } });
    const created = await w.machine.create({ source: 'src', target: 'dst', lanes: 2 });
    await waitFor(() => w.transfer.lanes.get(1)?.committed === 3 * chunk, { what: 'lane 1 to reach its hang' });
    const lane1 = w.hub.calls.items.find((c) => c.op === 'seed-send' && (c.params['lane'] as { index: number }).index === 1);
    w.hub.relay.close(Number(lane1?.params['stream']));
    const seed = await settled(w, created.id);
    expect(seed.state).toBe('succeeded');
    expect(w.transfer.lanes.get(1)?.sendOffsets).toEqual([0, 3 * chunk]);
    expect(w.transfer.lanes.get(0)?.sendOffsets).toEqual([0]);
    expect(w.audits.find((a) => a.action === 'seed.transfer.interrupted')?.message).toMatch(/^lane 1: SEEDWIRE_DISCONNECTED: the relay closed stream \d+; resuming$/);
  });

  it('five fruitless attempts of one lane fail the seed, naming the lane', async () => {
    const w = world({ transfer: { chunk, interruptLane: (lane) => (lane === 2 ? { at: 0, then: 'drop' } : null) } });
    const seed = await runSeed(w, { lanes: 3 });
    expect(seed.state).toBe('failed');
    expect(seed.error).toEqual({ code: 'SEEDWIRE_DISCONNECTED', message: 'transfer lane 2 made no progress in 5 attempts: scripted link drop at byte 0' });
    expect(w.transfer.lanes.get(2)?.sendOffsets).toEqual([0, 0, 0, 0, 0]);
    expect(w.transfer.lanes.get(0)?.sendOffsets).toEqual([0]);
    expect(w.target.ops().at(-1)).toBe('seed-cleanup-target');
  });

  it('progress in one lane does not reset another lane\'s fruitless count', async () => {
    // Lane 0 drops four times without progress, then completes; lane 1 drops after progress each time.
    const w = world({
      transfer: {
        chunk,
        interruptLane: (lane, attempt) => (lane === 0 ? (attempt < 5 ? { at: 0, then: 'drop' } : null) : attempt < 4 ? { at: attempt * chunk, then: 'drop' } : null),
      },
    });
    const seed = await runSeed(w, { lanes: 2 });
    expect(seed.state).toBe('succeeded');
    expect(w.transfer.lanes.get(0)?.sendOffsets).toEqual([0, 0, 0, 0, 0]);
    expect(w.transfer.lanes.get(1)?.sendOffsets).toEqual([0, chunk, 2 * chunk, 3 * chunk]);
  });

  it('an abort cancels every lane and cleans up', async () => {
    const w = world({ transfer: { chunk, interruptLane: () => ({ at: chunk, then: 'hang' }) } });
    const created = await w.machine.create({ source: 'src', target: 'dst', lanes: 4 });
    await waitFor(() => w.transfer.lanes.size === 4 && [...w.transfer.lanes.values()].every((l) => l.committed >= chunk), { what: 'every lane to have sent a chunk' });
    const aborted = await w.machine.abort(created.id);
    expect(aborted).toMatchObject({ state: 'aborted', error: { code: 'SEEDWIRE_CANCELED' } });
    const transferOps = w.hub.calls.items.filter((c) => c.op === 'seed-send' || c.op === 'seed-receive');
    expect(transferOps).toHaveLength(8);
    await waitFor(() => w.hub.relay.opened.every((o) => w.hub.relay.creditLimit(o.stream) === 0), { what: 'every lane stream to be closed' });
    expect(w.target.ops().at(-1)).toBe('seed-cleanup-target');
  });

  it('after a controller restart every lane resumes from its own offset', async () => {
    let hangs = true;
    const w = world({ transfer: { chunk, interruptLane: (lane) => (hangs ? { at: (lane + 1) * chunk, then: 'hang' } : null) } });
    const created = await w.machine.create({ source: 'src', target: 'dst', lanes: 2 });
    await waitFor(() => w.transfer.lanes.get(0)?.committed === chunk && w.transfer.lanes.get(1)?.committed === 2 * chunk, { what: 'both lanes to reach their hang' });
    hangs = false;
    await w.restart();
    const seed = await settled(w, created.id);
    expect(seed.state).toBe('succeeded');
    expect(w.transfer.lanes.get(0)?.sendOffsets).toEqual([0, chunk]);
    expect(w.transfer.lanes.get(1)?.sendOffsets).toEqual([0, 2 * chunk]);
  });
});
