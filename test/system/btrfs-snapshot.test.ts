/**
 * The btrfs snapshot backend on a real btrfs (loop device): the datadir lives in a subvolume;
 * snapshots are read-only subvolume snapshots, mounted read-only by bind mount.
 */
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../agent/config/schema.js';
import { collectFacts } from '../../agent/facts.js';
import { snapshotBackendFor, snapshotOps } from '../../agent/ops/snapshot.js';
import { readMounts, findMountAt } from '../../agent/snapshot/mounts.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { btrfsAvailable, createBtrfs, type BtrfsVolume } from '../helpers/btrfs.js';
import { callOp, createHostOpContext, makeTestAgentConfig } from '../helpers/host-op-context.js';

const availability = await btrfsAvailable();
const inCI = process.env.CI === 'true';

describe('btrfs availability', () => {
  it.runIf(inCI)('btrfs on a loop device is available in CI (a missing tool fails here, never skips)', () => {
    expect(availability.reason).toBe('');
    expect(availability.ok).toBe(true);
  });
});

describe.skipIf(!availability.ok)(`btrfs snapshot backend on a loop device${availability.ok ? '' : ` — SKIPPED: ${availability.reason}`}`, () => {
  let baseDir: string;
  let volume: BtrfsVolume;
  let config: AgentConfig;
  let datadir: string;
  let mountPoint: string;
  let snapshotDir: string;

  beforeAll(async () => {
    baseDir = await mkdtemp(join(tmpdir(), 'sw-bt-'));
    volume = await createBtrfs({ baseDir, sizeBytes: 512 * 1024 * 1024 });
    const subvolume = await volume.createSubvolume('mysql');
    datadir = join(subvolume, 'data');
    await mkdir(join(datadir, 'shop'), { recursive: true });
    await writeFile(join(datadir, 'shop', 'orders.ibd'), 'version-1\n');
    snapshotDir = join(volume.mountPoint, '.seedwire-snapshots');
    mountPoint = join(baseDir, 'snapmnt');
    config = makeTestAgentConfig({
      mysql: { datadir, port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand: 'false', commandTimeoutSeconds: 5 },
      snapshot: { backend: 'btrfs', mountPoint, btrfs: { subvolume, snapshotDir, namePrefix: 'seedwire-' } },
    });
  });

  afterAll(async () => {
    await volume?.destroy();
    if (baseDir) await rm(baseDir, { recursive: true, force: true });
  });

  const call = (name: string, params: Record<string, unknown> = {}) => callOp(snapshotOps, name, createHostOpContext(config, name), params);
  const mountedAt = async (path: string) => findMountAt(await readMounts(), path);

  it('lists no snapshots at first', async () => {
    expect((await call('snapshots')).result).toEqual([]);
  });

  it('create-snapshot makes a read-only subvolume snapshot with the prefix', async () => {
    const { result } = await call('create-snapshot', { name: 'first' });
    expect(result).toMatchObject({ name: 'first', path: join(snapshotDir, 'seedwire-first'), sizeBytes: null, mounted: false });
    expect(Date.parse((result as { createdAt: string }).createdAt)).toBeGreaterThan(Date.now() - 60_000);
    const show = await execa('btrfs', ['subvolume', 'show', join(snapshotDir, 'seedwire-first')]);
    expect(show.stdout).toMatch(/Flags:\s+readonly/);
  });

  it('create-snapshot without a name uses a UTC timestamp; a duplicate name is a conflict', async () => {
    const { result } = await call('create-snapshot');
    expect((result as { name: string }).name).toMatch(/^\d{8}-\d{6}$/);
    await expect(call('create-snapshot', { name: 'first' })).rejects.toMatchObject({ code: 'SEEDWIRE_CONFLICT' });
  });

  it('lists only subvolumes with the name prefix', async () => {
    await execa('btrfs', ['subvolume', 'snapshot', '-r', config.snapshot!.btrfs!.subvolume, join(snapshotDir, 'someone-else')]);
    await mkdir(join(snapshotDir, 'seedwire-plain-dir'));
    const names = ((await call('snapshots')).result as Array<{ name: string }>).map((s) => s.name);
    expect(names).toContain('first');
    expect(names).not.toContain('someone-else');
    expect(names).not.toContain('plain-dir');
    expect(names).toHaveLength(2);
  });

  it('mount-snapshot mounts it read-only; the snapshot keeps the old content while the live datadir changes', async () => {
    const { result } = await call('mount-snapshot', { name: 'first' });
    expect(result).toEqual({ mountPoint, dataPath: join(mountPoint, 'data') });
    const entry = await mountedAt(mountPoint);
    expect(entry?.options).toContain('ro');

    await writeFile(join(datadir, 'shop', 'orders.ibd'), 'version-2\n');
    expect(await readFile(join(datadir, 'shop', 'orders.ibd'), 'utf8')).toBe('version-2\n');
    expect(await readFile(join(mountPoint, 'data', 'shop', 'orders.ibd'), 'utf8')).toBe('version-1\n');
    await expect(writeFile(join(mountPoint, 'data', 'x'), 'no')).rejects.toMatchObject({ code: 'EROFS' });
  });

  it('facts and the list report which snapshot is mounted (read from /proc/self/mounts)', async () => {
    const facts = await collectFacts(config);
    expect(facts.mounted).toEqual({ name: 'first', mountPoint, dataPath: join(mountPoint, 'data') });
    expect(facts.snapshots.find((s) => s.name === 'first')?.mounted).toBe(true);
    expect(facts.snapshots.filter((s) => s.mounted)).toHaveLength(1);
    // a fresh backend (no memory of the mount) sees the same
    const { createSnapshotBackend } = await import('../../agent/snapshot/index.js');
    expect((await createSnapshotBackend(config).mounted())?.name).toBe('first');
  });

  it('mounting the same snapshot again is a no-op; mounting another is refused while one is mounted', async () => {
    expect((await call('mount-snapshot', { name: 'first' })).result).toEqual({ mountPoint, dataPath: join(mountPoint, 'data') });
    const other = ((await call('snapshots')).result as Array<{ name: string }>).find((s) => s.name !== 'first')!.name;
    await expect(call('mount-snapshot', { name: other })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('snapshot first') });
  });

  it('remove-snapshot is refused while the snapshot is mounted', async () => {
    await expect(call('remove-snapshot', { name: 'first' })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('mounted') });
    expect(((await call('snapshots')).result as Array<{ name: string }>).map((s) => s.name)).toContain('first');
  });

  it('a busy (pinned) snapshot cannot be unmounted or removed until unpinned', async () => {
    const backend = snapshotBackendFor(config);
    backend.markBusy('first');
    try {
      await expect(call('unmount-snapshot')).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('being read by a seed') });
      expect(await mountedAt(mountPoint)).not.toBeNull();
    } finally {
      backend.unmarkBusy('first');
    }
  });

  it('unmount-snapshot unmounts; a second unmount is a no-op', async () => {
    expect((await call('unmount-snapshot')).result).toEqual({ mounted: false });
    expect(await mountedAt(mountPoint)).toBeNull();
    expect((await call('unmount-snapshot')).result).toEqual({ mounted: false });
    expect((await collectFacts(config)).mounted).toBeNull();
  });

  it('remove-snapshot refuses a busy snapshot, then removes it once unpinned', async () => {
    const backend = snapshotBackendFor(config);
    backend.markBusy('first');
    await expect(call('remove-snapshot', { name: 'first' })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED' });
    backend.unmarkBusy('first');
    expect((await call('remove-snapshot', { name: 'first' })).result).toEqual({ removed: true });
    const names = ((await call('snapshots')).result as Array<{ name: string }>).map((s) => s.name);
    expect(names).not.toContain('first');
    await expect(call('remove-snapshot', { name: 'first' })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('no snapshot named first') });
  });
});

describe.skipIf(!availability.ok)(`btrfs snapshot of a running MariaDB${availability.ok ? '' : ` — SKIPPED: ${availability.reason}`}`, () => {
  let baseDir: string;
  let volume: BtrfsVolume | undefined;
  const servers: MariaDB[] = [];

  afterAll(async () => {
    for (const server of servers) await server.destroy();
    await volume?.destroy();
    if (baseDir) await rm(baseDir, { recursive: true, force: true });
  });

  it('a snapshot taken while the server writes starts as a consistent copy with the same table checksums', async () => {
    baseDir = await mkdtemp(join(tmpdir(), 'sw-bm-'));
    volume = await createBtrfs({ baseDir, sizeBytes: 1024 * 1024 * 1024 });
    const subvolume = await volume.createSubvolume('mysql');
    const source = await createMariaDB({ baseDir: join(baseDir, 'src'), datadir: join(subvolume, 'data') });
    servers.push(source);
    await source.start();
    await source.loadSampleData(20_000);
    const expected = await source.checksumTables();
    expect(expected.size).toBe(3);

    const config = makeTestAgentConfig({
      mysql: { datadir: source.datadir, port: source.port, startCommand: source.startCommand, stopCommand: source.stopCommand, statusCommand: source.statusCommand, commandTimeoutSeconds: 60 },
      snapshot: { backend: 'btrfs', mountPoint: join(baseDir, 'snapmnt'), btrfs: { subvolume, snapshotDir: join(volume.mountPoint, 'snaps'), namePrefix: 'seedwire-' } },
    });
    const call = (name: string, params: Record<string, unknown> = {}) => callOp(snapshotOps, name, createHostOpContext(config, name), params);
    await call('create-snapshot', { name: 'live' });
    await source.exec('INSERT INTO seedwire_sample.t1 VALUES (999999, "after snapshot", 1, NOW())');

    const { dataPath } = (await call('mount-snapshot', { name: 'live' })).result as { dataPath: string };
    const copyDir = join(baseDir, 'copy');
    await mkdir(copyDir, { recursive: true });
    await execa('cp', ['-a', dataPath, join(copyDir, 'data')]);
    expect((await call('unmount-snapshot')).result).toEqual({ mounted: false });

    const copy = await createMariaDB({ baseDir: copyDir, datadir: join(copyDir, 'data'), install: false });
    servers.push(copy);
    await copy.start();
    expect(await copy.checksumTables()).toEqual(expected);
    expect(await copy.exec('SELECT COUNT(*) FROM seedwire_sample.t1 WHERE id = 999999')).toBe('0');
    expect((await call('remove-snapshot', { name: 'live' })).result).toEqual({ removed: true });
  });
});
