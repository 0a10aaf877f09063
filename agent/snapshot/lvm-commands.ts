/**
 * Every LVM-backend command line, built by pure functions so they are unit tested. Names are
 * validated upstream and still quoted here. LVM_SUPPRESS_FD_WARNINGS keeps lvm's "file
 * descriptor leaked" noise (the agent's inherited fds) out of stderr and error messages.
 */
import { quoteShell } from './names.js';

const LVM_ENV = 'LVM_SUPPRESS_FD_WARNINGS=1';
export const LVS_FIELDS = 'lv_name,lv_path,lv_time,lv_size,origin';

export function buildLvsCommand(volumeGroup: string): string {
  return `${LVM_ENV} lvs --reportformat json -o ${LVS_FIELDS} --units b --nosuffix ${quoteShell(volumeGroup)}`;
}

export function buildLvcreateCommand(o: { volumeGroup: string; logicalVolume: string; snapshotLv: string; size: string }): string {
  return `${LVM_ENV} lvcreate -s -n ${quoteShell(o.snapshotLv)} -L ${quoteShell(o.size)} ${quoteShell(`${o.volumeGroup}/${o.logicalVolume}`)}`;
}

export function buildLvremoveCommand(volumeGroup: string, snapshotLv: string): string {
  return `${LVM_ENV} lvremove -f ${quoteShell(`${volumeGroup}/${snapshotLv}`)}`;
}

/** Mount options: always ro; nouuid for xfs (the snapshot carries the origin's UUID); then the configured extras. */
export function buildLvMountOptions(fstype: string | null, extra?: string): string {
  const options = ['ro'];
  if (fstype === 'xfs') options.push('nouuid');
  for (const o of (extra ?? '').split(',').map((s) => s.trim())) if (o && !options.includes(o)) options.push(o);
  return options.join(',');
}

export function buildLvMountCommand(o: { device: string; mountPoint: string; fstype: string | null; extraOptions?: string }): string {
  return `mount -o ${quoteShell(buildLvMountOptions(o.fstype, o.extraOptions))} ${quoteShell(o.device)} ${quoteShell(o.mountPoint)}`;
}

export function buildLvUmountCommand(mountPoint: string): string {
  return `umount ${quoteShell(mountPoint)}`;
}

/** The device-mapper name of an LV: dashes inside VG and LV names are doubled. */
export function buildMapperPath(volumeGroup: string, lv: string): string {
  return `/dev/mapper/${volumeGroup.replace(/-/g, '--')}-${lv.replace(/-/g, '--')}`;
}
