/**
 * Seed leases in the stage loop (cluster mode), on scripted agents and a real store (SQLite in
 * memory: the lease statements are the same on PostgreSQL, whose race is tested in
 * test/integration/store-contract.test.ts): a fenced owner stops without touching the agents; a
 * seed whose owner's lease expired is adopted and completes; a live owner's seed is left alone.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SeedOwnership } from '../../server-stub/seed/lease.js';
import { hang } from '../helpers/memory-hub.js';
import { createSeedWorld, settled, type SeedWorld } from '../helpers/seed-world.js';

function ownership(owner: string, overrides: Partial<SeedOwnership> = {}): SeedOwnership {
  return { owner, ownerUrl: () => `http://${owner}:7070`, leaseMs: 60_000, sweepMs: 60_000, summonEveryMs: 1_000, summonWaitMs: 100, summon: async () => undefined, ...overrides };
}

const NEW_SEED = { source: 'src', target: 'dst', method: 'cold', compression: 'auto', effectiveCompression: 'none', startTarget: true, maxBytesPerSec: null, lanes: 1, bytesTotal: 1024 * 1024 } as const;

let world: SeedWorld | null = null;
afterEach(async () => {
  await world?.dispose();
  world = null;
});

describe('seed leases', () => {
  it('a fenced owner (its lease taken by another controller) stops driving the seed without touching its agents', async () => {
    // Renewal every 100 ms; the transfer hangs half-way so the seed is mid-transfer when the lease goes.
    world = createSeedWorld({ ownership: ownership('ctl-a', { leaseMs: 300 }) });
    const w = world;
    w.source.on('seed-send', hang());
    await w.machine.resumeUnfinished(); // starts the renewals
    const { id } = await w.machine.create({ source: 'src', target: 'dst' });
    expect((await w.store.seeds.lease(id))!.owner).toBe('ctl-a');
    await vi.waitFor(() => expect(w.callsSince(0)).toContain('src:seed-send'), { timeout: 5_000 });
    const mark = w.mark();

    // Another controller finds the lease expired (as after a pause) and takes it.
    await w.store.seeds.claimLease(id, { owner: 'ctl-a', ownerUrl: null }, -1);
    expect(await w.store.seeds.claimLease(id, { owner: 'ctl-b', ownerUrl: 'http://ctl-b:7070' }, 60_000)).not.toBeNull();

    await vi.waitFor(() => expect(w.machine.driving()).toEqual([]), { timeout: 5_000 });
    const seed = (await w.machine.get(id))!;
    expect(seed.state).toBe('running'); // not failed: ctl-b drives it now
    expect(seed.stages.find((s) => s.name === 'transfer')?.state).toBe('running');
    expect(w.callsSince(mark)).toEqual([]); // no cleanup, no MySQL start, no new step
    expect(w.audits.map((a) => a.action)).not.toContain('seed.finish');
    expect((await w.store.seeds.lease(id))!.owner).toBe('ctl-b');
  });

  it("adopts a seed whose owner's lease expired, audits seed.adopt, and completes it", async () => {
    world = createSeedWorld({ ownership: ownership('ctl-b') });
    const w = world;
    await w.store.seeds.create({ ...NEW_SEED, id: 'seed-orphan' }, { owner: 'ctl-dead', ownerUrl: 'http://dead:7070', leaseMs: -1 });
    await w.store.seeds.endStage('seed-orphan', 'precheck', 'succeeded', 'checked');
    await w.machine.resumeUnfinished();
    const seed = await settled(w, 'seed-orphan');
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    const adopt = w.audits.find((a) => a.action === 'seed.adopt');
    expect(adopt?.params).toMatchObject({ id: 'seed-orphan', previousOwner: 'ctl-dead', previousOwnerUrl: 'http://dead:7070', owner: 'ctl-b', ownerUrl: 'http://ctl-b:7070' });
    expect((await w.store.seeds.lease('seed-orphan'))!.owner).toBe('ctl-b');
  });

  it("leaves a seed alone while its owner's lease is live, and adopts it in a sweep once it expires", async () => {
    world = createSeedWorld({ ownership: ownership('ctl-b', { sweepMs: 50 }) });
    const w = world;
    await w.store.seeds.create({ ...NEW_SEED, id: 'seed-owned' }, { owner: 'ctl-alive', ownerUrl: null, leaseMs: 60_000 });
    await w.store.seeds.endStage('seed-owned', 'precheck', 'succeeded', 'checked');
    await w.machine.resumeUnfinished();
    expect(w.machine.driving()).toEqual([]);
    expect(w.callsSince(0)).toEqual([]);

    // The owner stops renewing: its lease runs out, and the next sweep adopts the seed.
    await w.store.seeds.claimLease('seed-owned', { owner: 'ctl-alive', ownerUrl: null }, -1);
    const seed = await settled(w, 'seed-owned');
    expect(seed.state).toBe('succeeded');
    expect(w.audits.filter((a) => a.action === 'seed.adopt')).toHaveLength(1);
  });

  it('an agent that leaves during a waiting step (its link dropped, it redialed another controller) is summoned back', async () => {
    const summoned: string[] = [];
    world = createSeedWorld({
      ownership: ownership('ctl-a', {
        summonEveryMs: 20,
        summon: async (agentId) => {
          summoned.push(agentId);
          w.hub.connect(agentId); // the holder moved it here
        },
      }),
    });
    const w = world;
    let finalizing!: () => void;
    const reached = new Promise<void>((resolve) => {
      finalizing = resolve;
    });
    w.target.on('seed-finalize-target', (params) => {
      finalizing();
      // Still running on the agent when its link drops; the result comes after it is back.
      return new Promise((resolve) => setTimeout(() => resolve({ started: params['startMysql'] === true, running: params['startMysql'] === true }), 100));
    });
    await w.machine.resumeUnfinished();
    const { id } = await w.machine.create({ source: 'src', target: 'dst' });
    await reached;
    w.hub.disconnect('dst');
    const seed = await settled(w, id);
    expect(seed.state).toBe('succeeded');
    expect(summoned).toContain('dst');
  });

  it('an abort asked for through another controller reaches the owner at its next renewal', async () => {
    world = createSeedWorld({ ownership: ownership('ctl-a', { leaseMs: 300 }) });
    const w = world;
    w.source.on('seed-send', hang());
    await w.machine.resumeUnfinished();
    const { id } = await w.machine.create({ source: 'src', target: 'dst' });
    await vi.waitFor(() => expect(w.callsSince(0)).toContain('src:seed-send'), { timeout: 5_000 });
    await w.store.seeds.requestAbort(id); // what another controller's abort writes
    const seed = await settled(w, id);
    expect(seed.state).toBe('aborted');
    expect(w.callsSince(0)).toContain('dst:seed-cleanup-target');
  });
});
