import { describe, expect, it } from 'vitest';
import {
  buildLvcreateCommand,
  buildLvMountCommand,
  buildLvMountOptions,
  buildLvremoveCommand,
  buildLvsCommand,
  buildLvUmountCommand,
  buildMapperPath,
} from '../../agent/snapshot/lvm-commands.js';
import { quoteShell } from '../../agent/snapshot/names.js';
import { execa } from 'execa';

describe('LVM cannot run here (no device-mapper): LVM backend command lines', () => {
  it('lists the volume group as a JSON report with byte sizes', () => {
    expect(buildLvsCommand('vg0')).toBe('LVM_SUPPRESS_FD_WARNINGS=1 lvs --reportformat json -o lv_name,lv_path,lv_time,lv_size,origin --units b --nosuffix vg0');
  });

  it('creates a classic snapshot of vg/lv with the prefixed name and configured size', () => {
    expect(buildLvcreateCommand({ volumeGroup: 'vg0', logicalVolume: 'mysql', snapshotLv: 'seedwire-20261125-063000', size: '10G' })).toBe(
      'LVM_SUPPRESS_FD_WARNINGS=1 lvcreate -s -n seedwire-20261125-063000 -L 10G vg0/mysql',
    );
  });

  it('removes by vg/name with -f', () => {
    expect(buildLvremoveCommand('vg0', 'seedwire-first')).toBe('LVM_SUPPRESS_FD_WARNINGS=1 lvremove -f vg0/seedwire-first');
  });

  it('mounts read-only, adding nouuid only for xfs, then the configured extra options', () => {
    expect(buildLvMountOptions('ext4')).toBe('ro');
    expect(buildLvMountOptions('xfs')).toBe('ro,nouuid');
    expect(buildLvMountOptions('xfs', 'norecovery, ro')).toBe('ro,nouuid,norecovery');
    expect(buildLvMountOptions(null)).toBe('ro');
    expect(buildLvMountCommand({ device: '/dev/vg0/seedwire-a', mountPoint: '/mnt/seedwire', fstype: 'xfs' })).toBe('mount -o ro,nouuid /dev/vg0/seedwire-a /mnt/seedwire');
    expect(buildLvMountCommand({ device: '/dev/vg0/seedwire-a', mountPoint: '/mnt/seed wire', fstype: 'ext4' })).toBe("mount -o ro /dev/vg0/seedwire-a '/mnt/seed wire'");
    expect(buildLvUmountCommand('/mnt/seedwire')).toBe('umount /mnt/seedwire');
  });

  it('names the device-mapper node with doubled dashes', () => {
    expect(buildMapperPath('data-vg', 'seedwire-first-copy')).toBe('/dev/mapper/data--vg-seedwire--first--copy');
  });

  it('quotes hostile arguments so bash sees exactly one word each', async () => {
    const hostile = [`a'b`, 'x; rm -rf /', '$(id)', '`id`', 'two words', 'new\nline', '', '--'];
    for (const arg of hostile) {
      const { stdout } = await execa('bash', ['-c', `printf '%s\\0' ${quoteShell(arg)}`]);
      expect(stdout).toBe(`${arg}\0`);
    }
    const command = buildLvcreateCommand({ volumeGroup: 'vg0', logicalVolume: 'mysql', snapshotLv: "x'; touch /tmp/pwned; '", size: '1G' });
    expect(command).toBe(`LVM_SUPPRESS_FD_WARNINGS=1 lvcreate -s -n 'x'\\''; touch /tmp/pwned; '\\''' -L 1G vg0/mysql`);
  });
});
