/**
 * LVM backend: classic copy-on-write snapshots of snapshot.lvm.volumeGroup/logicalVolume,
 * mounted read-only at snapshot.mountPoint. LVM cannot run in this project's test environment
 * (no device-mapper), so command lines and parsing are unit tested; this file only wires them.
 */
import { stat } from 'node:fs/promises';
import { SeedwireError } from '../../shared/errors.js';
import type { AgentConfig, SnapshotConfig } from '../config/schema.js';
import { AGENT_LIMITS } from '../limits.js';
import { BusySnapshots } from './busy.js';
import { deriveDataPath, ensureMountPoint, pickRunner, refuseUnknown, resolveMountPoint, runChecked } from './common.js';
import {
  buildLvcreateCommand,
  buildLvMountCommand,
  buildLvremoveCommand,
  buildLvsCommand,
  buildLvUmountCommand,
  buildMapperPath,
} from './lvm-commands.js';
import { parseLvsReport, selectSnapshotLvs, type LvInfo } from './lvm-report.js';
import { findMountAt, readMounts, type MountEntry } from './mounts.js';
import { makeSnapshotName, validateSnapshotName } from './names.js';
import type { CallOptions, Mount, Snapshot, SnapshotBackend } from './types.js';

export type LvmConfig = NonNullable<SnapshotConfig['lvm']>;

async function readRdev(path: string): Promise<number | null> {
  try {
    const st = await stat(path);
    return st.isBlockDevice() ? st.rdev : null;
  } catch {
    return null;
  }
}

/** Whether a mount's source is this LV: by name (/dev/vg/lv, /dev/mapper/vg-lv), else by device number. */
async function isSameDevice(source: string, lv: LvInfo, volumeGroup: string): Promise<boolean> {
  if (source === lv.path || source === buildMapperPath(volumeGroup, lv.name)) return true;
  if (!source.startsWith('/dev/')) return false;
  const [a, b] = await Promise.all([readRdev(source), readRdev(lv.path)]);
  return a !== null && a === b;
}

async function findLvMount(entries: readonly MountEntry[], lv: LvInfo, volumeGroup: string): Promise<MountEntry | null> {
  for (const entry of entries) if (await isSameDevice(entry.source, lv, volumeGroup)) return entry;
  return null;
}

export function createLvmBackend(config: AgentConfig, busy = new BusySnapshots()): SnapshotBackend {
  const lvm = config.snapshot?.lvm as LvmConfig;
  const mountPoint = config.snapshot?.mountPoint as string;
  const lvName = (name: string): string => lvm.namePrefix + name;

  async function listLvs(options?: CallOptions): Promise<LvInfo[]> {
    const result = await runChecked(pickRunner(options), buildLvsCommand(lvm.volumeGroup), `listing LVs of snapshot.lvm.volumeGroup ${lvm.volumeGroup}`, { quiet: true, tailBytes: AGENT_LIMITS.lvsOutputBytes });
    return parseLvsReport(result.stdoutTail);
  }

  async function inspectMountPoint(lvs: LvInfo[]): Promise<{ occupied: boolean; name: string | null }> {
    const entry = findMountAt(await readMounts(), await resolveMountPoint(mountPoint));
    if (!entry) return { occupied: false, name: null };
    for (const s of selectSnapshotLvs(lvs, lvm.logicalVolume, lvm.namePrefix)) {
      if (await isSameDevice(entry.source, s, lvm.volumeGroup)) return { occupied: true, name: s.snapshotName };
    }
    return { occupied: true, name: null };
  }

  /** Where the origin LV is mounted (dataPath is relative to it) and its file system type. */
  async function findOrigin(lvs: LvInfo[]): Promise<MountEntry> {
    const origin = lvs.find((lv) => lv.name === lvm.logicalVolume);
    if (!origin) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot.lvm.logicalVolume ${lvm.logicalVolume} is not in volume group ${lvm.volumeGroup}`);
    const entry = await findLvMount(await readMounts(), origin, lvm.volumeGroup);
    if (!entry) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot.lvm.logicalVolume ${origin.path} is not mounted, so the datadir's place inside it is unknown`);
    return entry;
  }

  const toMount = (name: string, origin: MountEntry): Mount => ({
    name,
    mountPoint,
    dataPath: deriveDataPath(mountPoint, origin.target, config.mysql?.datadir, `the mount of snapshot.lvm.logicalVolume`),
  });

  const backend: SnapshotBackend = {
    kind: 'lvm',

    async list(options) {
      const lvs = await listLvs(options);
      const { name: mountedName } = await inspectMountPoint(lvs);
      return selectSnapshotLvs(lvs, lvm.logicalVolume, lvm.namePrefix).map(
        (s): Snapshot => ({ name: s.snapshotName, path: s.path, createdAt: s.createdAt, sizeBytes: s.sizeBytes, mounted: s.snapshotName === mountedName }),
      );
    },

    async create(name, options) {
      const snapName = validateSnapshotName(name ?? makeSnapshotName());
      if ((await backend.list(options)).some((s) => s.name === snapName)) throw new SeedwireError('SEEDWIRE_CONFLICT', `a snapshot named ${snapName} already exists`);
      const command = buildLvcreateCommand({ volumeGroup: lvm.volumeGroup, logicalVolume: lvm.logicalVolume, snapshotLv: lvName(snapName), size: lvm.size });
      await runChecked(pickRunner(options), command, 'lvcreate of snapshot.lvm.logicalVolume');
      const created = (await backend.list(options)).find((s) => s.name === snapName);
      if (!created) throw new SeedwireError('SEEDWIRE_INTERNAL', `lvcreate reported success but lvs does not list ${lvName(snapName)}`);
      return created;
    },

    async mount(name, options) {
      validateSnapshotName(name);
      const lvs = await listLvs(options);
      const snap = selectSnapshotLvs(lvs, lvm.logicalVolume, lvm.namePrefix).find((s) => s.snapshotName === name) ?? refuseUnknown(name);
      const origin = await findOrigin(lvs);
      const mount = toMount(name, origin);
      const state = await inspectMountPoint(lvs);
      if (state.name === name) return mount;
      if (state.occupied) {
        throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot.mountPoint ${mountPoint} already has ${state.name ? `snapshot ${state.name}` : 'something else'} mounted; unmount it first`);
      }
      const target = await ensureMountPoint(mountPoint);
      await runChecked(pickRunner(options), buildLvMountCommand({ device: snap.path, mountPoint: target, fstype: origin.fstype, extraOptions: lvm.mountOptions }), `mounting snapshot ${name}`);
      return mount;
    },

    async unmount(options) {
      const state = await inspectMountPoint(await listLvs(options));
      if (!state.occupied) return;
      if (!state.name) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot.mountPoint ${mountPoint} holds a mount seedwire did not make; not unmounting it`);
      if (busy.has(state.name)) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot ${state.name} is being read by a seed; not unmounting it`);
      await runChecked(pickRunner(options), buildLvUmountCommand(await resolveMountPoint(mountPoint)), `unmounting ${mountPoint}`);
    },

    async remove(name, options) {
      validateSnapshotName(name);
      const lvs = await listLvs(options);
      if (!selectSnapshotLvs(lvs, lvm.logicalVolume, lvm.namePrefix).some((s) => s.snapshotName === name)) refuseUnknown(name);
      if (busy.has(name)) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot ${name} is being read by a seed; it cannot be removed now`);
      if ((await inspectMountPoint(lvs)).name === name) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `snapshot ${name} is mounted at ${mountPoint}; unmount it first`);
      await runChecked(pickRunner(options), buildLvremoveCommand(lvm.volumeGroup, lvName(name)), `removing snapshot ${name}`);
    },

    async mounted(options) {
      const lvs = await listLvs(options);
      const state = await inspectMountPoint(lvs);
      return state.name ? toMount(state.name, await findOrigin(lvs)) : null;
    },

    markBusy: (name) => busy.mark(name),
    unmarkBusy: (name) => busy.unmark(name),
    isBusy: (name) => busy.has(name),
  };
  return backend;
}
