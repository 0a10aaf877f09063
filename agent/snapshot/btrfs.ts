/**
 * btrfs backend: read-only subvolume snapshots in snapshot.btrfs.snapshotDir, exposed at
 * snapshot.mountPoint by a read-only bind mount. Which snapshot is mounted is found by device:
 * every btrfs subvolume has its own st_dev, and a bind mount shares it.
 */
import { lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import type { AgentConfig, SnapshotConfig } from '../config/schema.js';
import { BusySnapshots } from './busy.js';
import { deriveDataPath, ensureMountPoint, pickRunner, refuseUnknown, resolveMountPoint, runChecked } from './common.js';
import { findMountAt, readMounts } from './mounts.js';
import { makeSnapshotName, quoteShell, validateSnapshotName } from './names.js';
import type { CallOptions, Mount, Snapshot, SnapshotBackend } from './types.js';

/** Inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT_INO = 256;

export type BtrfsConfig = NonNullable<SnapshotConfig['btrfs']>;

export function buildBtrfsSnapshotCommand(subvolume: string, target: string): string {
  return `btrfs subvolume snapshot -r ${quoteShell(subvolume)} ${quoteShell(target)}`;
}
export function buildBtrfsDeleteCommand(target: string): string {
  return `btrfs subvolume delete ${quoteShell(target)}`;
}
export function buildBindMountCommand(source: string, mountPoint: string): string {
  return `mount --bind -o ro ${quoteShell(source)} ${quoteShell(mountPoint)}`;
}
export function buildUmountCommand(mountPoint: string): string {
  return `umount ${quoteShell(mountPoint)}`;
}

interface Found {
  name: string;
  path: string;
  dev: number;
  createdAt: string | null;
}

export function createBtrfsBackend(config: AgentConfig, busy = new BusySnapshots()): SnapshotBackend {
  const btrfs = config.snapshot?.btrfs as BtrfsConfig;
  const mountPoint = config.snapshot?.mountPoint as string;
  const pathOf = (name: string): string => join(btrfs.snapshotDir, btrfs.namePrefix + name);

  async function findAll(): Promise<Found[]> {
    let names: string[];
    try {
      names = await readdir(btrfs.snapshotDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const found: Found[] = [];
    for (const entry of names.filter((n) => n.startsWith(btrfs.namePrefix) && n.length > btrfs.namePrefix.length)) {
      const path = join(btrfs.snapshotDir, entry);
      const st = await lstat(path).catch(() => null);
      if (!st?.isDirectory() || st.ino !== SUBVOLUME_ROOT_INO) continue; // not a subvolume: not ours
      const born = st.birthtimeMs > 0 ? st.birthtime : null;
      found.push({ name: entry.slice(btrfs.namePrefix.length), path, dev: st.dev, createdAt: born?.toISOString() ?? null });
    }
    return found.sort((a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? '') || a.name.localeCompare(b.name));
  }

  /** The snapshot (of ours) bind-mounted at mountPoint, and whether anything at all is mounted there. */
  async function inspectMountPoint(all?: Found[]): Promise<{ occupied: boolean; found: Found | null }> {
    const target = await resolveMountPoint(mountPoint);
    if (!findMountAt(await readMounts(), target)) return { occupied: false, found: null };
    const dev = (await stat(target)).dev;
    const found = (all ?? (await findAll())).find((s) => s.dev === dev) ?? null;
    return { occupied: true, found };
  }

  const toMount = (name: string): Mount => ({
    name,
    mountPoint,
    dataPath: deriveDataPath(mountPoint, btrfs.subvolume, config.mysql?.datadir, 'snapshot.btrfs.subvolume'),
  });
  const toSnapshot = (s: Found, mountedName: string | null): Snapshot => ({ name: s.name, path: s.path, createdAt: s.createdAt, sizeBytes: null, mounted: s.name === mountedName });

  const backend: SnapshotBackend = {
    kind: 'btrfs',

    async list() {
      const all = await findAll();
      const { found } = await inspectMountPoint(all);
      return all.map((s) => toSnapshot(s, found?.name ?? null));
    },

    async create(name, options) {
      const snapName = validateSnapshotName(name ?? makeSnapshotName());
      const path = pathOf(snapName);
      if (await lstat(path).then(() => true, () => false)) throw new SeedwireError('SEEDWIRE_CONFLICT', `a snapshot named ${snapName} already exists (${path})`);
      await mkdir(btrfs.snapshotDir, { recursive: true });
      await runChecked(pickRunner(options), buildBtrfsSnapshotCommand(btrfs.subvolume, path), 'btrfs snapshot of snapshot.btrfs.subvolume');
      const created = (await findAll()).find((s) => s.name === snapName);
      if (!created) throw new SeedwireError('SEEDWIRE_INTERNAL', `btrfs reported success but ${path} is not a subvolume`);
      return toSnapshot(created, null);
    },

    async mount(name, options) {
      validateSnapshotName(name);
      const all = await findAll();
      const snap = all.find((s) => s.name === name) ?? refuseUnknown(name);
      const mount = toMount(name); // refuses a datadir outside the subvolume before mounting
      const { occupied, found } = await inspectMountPoint(all);
      if (found?.name === name) return mount;
      if (occupied) {
        throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot.mountPoint ${mountPoint} already has ${found ? `snapshot ${found.name}` : 'something else'} mounted; unmount it first`);
      }
      const target = await ensureMountPoint(mountPoint);
      await runChecked(pickRunner(options), buildBindMountCommand(snap.path, target), `mounting snapshot ${name}`);
      return mount;
    },

    async unmount(options) {
      const { occupied, found } = await inspectMountPoint();
      if (!occupied) return;
      if (!found) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot.mountPoint ${mountPoint} holds a mount seedwire did not make; not unmounting it`);
      if (busy.has(found.name)) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot ${found.name} is being read by a seed; not unmounting it`);
      await runChecked(pickRunner(options), buildUmountCommand(await resolveMountPoint(mountPoint)), `unmounting ${mountPoint}`);
    },

    async remove(name, options) {
      validateSnapshotName(name);
      const all = await findAll();
      const snap = all.find((s) => s.name === name) ?? refuseUnknown(name);
      if (busy.has(name)) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot ${name} is being read by a seed; it cannot be removed now`);
      const { found } = await inspectMountPoint(all);
      if (found?.name === name) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot ${name} is mounted at ${mountPoint}; unmount it first`);
      await runChecked(pickRunner(options), buildBtrfsDeleteCommand(snap.path), `removing snapshot ${name}`);
    },

    async mounted() {
      const { found } = await inspectMountPoint();
      return found ? toMount(found.name) : null;
    },

    markBusy: (name) => busy.mark(name),
    unmarkBusy: (name) => busy.unmark(name),
    isBusy: (name) => busy.has(name),
  };
  return backend;
}

export type { CallOptions };
