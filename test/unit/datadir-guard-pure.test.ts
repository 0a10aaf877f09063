/** The datadir guard's pure parts on literal text: /proc/locks lines, device numbers, matching, /proc/PID/stat. */
import { describe, expect, it } from 'vitest';
import { matchLocks, mountDevicesFor, parseMountInfo, parseProcLocks, splitDevice, type LockableFile } from '../../agent/mysql/proc-locks.js';
import { isUnder, parseParentPid } from '../../agent/mysql/proc-scan.js';

// As read on a host running mariadbd on ext4 (08:01), with a btrfs subvolume (00:2f) and an OFD lock.
const PROC_LOCKS = [
  '1: POSIX  ADVISORY  WRITE 4242 08:01:1234567 0 EOF',
  '2: POSIX  ADVISORY  WRITE 4242 08:01:1234570 0 EOF',
  '3: FLOCK  ADVISORY  WRITE 977 00:1a:88 0 EOF',
  '4: OFDLCK ADVISORY  READ  -1 00:2f:257 0 EOF',
  '4: -> POSIX  ADVISORY  WRITE 5151 08:01:1234567 0 EOF',
  '5: LEASE  ACTIVE    READ 31337 fe:00:2146573 0 EOF',
  'garbage that is not a lock line',
  '',
].join('\n');

describe('parseProcLocks', () => {
  it('reads kind, access, holder, device (hex) and inode (decimal) of every lock line', () => {
    const locks = parseProcLocks(PROC_LOCKS);
    expect(locks).toHaveLength(6);
    expect(locks[0]).toEqual({ kind: 'POSIX', access: 'WRITE', pid: 4242, major: 8, minor: 1, inode: 1234567n, waiting: false });
    expect(locks[2]).toMatchObject({ kind: 'FLOCK', pid: 977, major: 0, minor: 0x1a, inode: 88n });
    expect(locks[5]).toMatchObject({ kind: 'LEASE', access: 'READ', pid: 31337, major: 0xfe, minor: 0, inode: 2146573n });
  });

  it('an OFD lock has no holder pid; a `->` line is a waiter', () => {
    const locks = parseProcLocks(PROC_LOCKS);
    expect(locks[3]).toMatchObject({ kind: 'OFDLCK', pid: null, major: 0, minor: 0x2f, inode: 257n, waiting: false });
    expect(locks[4]).toMatchObject({ kind: 'POSIX', pid: 5151, inode: 1234567n, waiting: true });
  });

  it('inodes beyond 2^53 stay exact', () => {
    expect(parseProcLocks('1: POSIX  ADVISORY  WRITE 1 08:01:18446744073709551557 0 EOF')[0]?.inode).toBe(18446744073709551557n);
  });
});

describe('splitDevice', () => {
  it('splits st_dev as glibc does, small and large numbers', () => {
    expect(splitDevice(0x801n)).toEqual({ major: 8, minor: 1 });
    expect(splitDevice(0xfe00n)).toEqual({ major: 0xfe, minor: 0 });
    expect(splitDevice(0x2fn)).toEqual({ major: 0, minor: 0x2f });
    // makedev(259, 300000): major over 12 bits' worth of minor, minor over 8 bits
    const major = 259n;
    const minor = 300_000n;
    const dev = ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
    expect(splitDevice(dev)).toEqual({ major: 259, minor: 300_000 });
  });
});

describe('matchLocks', () => {
  const ext4 = { major: 8, minor: 1 };
  const files: LockableFile[] = [
    { name: 'ibdata1', inode: 1234567n, device: ext4 },
    { name: 'aria_log_control', inode: 1234570n, device: ext4 },
    { name: 'seedwire_sample/t1.ibd', inode: 99n, device: ext4 },
  ];

  it('matches inode and device on a real block device, the waiter too', () => {
    const matches = matchLocks(parseProcLocks(PROC_LOCKS), files);
    expect(matches.map((m) => [m.lock.pid, m.file.name])).toEqual([
      [4242, 'ibdata1'],
      [4242, 'aria_log_control'],
      [5151, 'ibdata1'],
    ]);
  });

  it('the same inode on another real device is not ours', () => {
    expect(matchLocks(parseProcLocks('1: POSIX  ADVISORY  WRITE 4242 08:02:1234567 0 EOF'), files)).toEqual([]);
    expect(matchLocks(parseProcLocks('1: POSIX  ADVISORY  WRITE 4242 00:2f:1234567 0 EOF'), files)).toEqual([]);
  });

  it('on anonymous devices (btrfs subvolumes) the inode decides, whatever the minor', () => {
    // stat() of a file in a btrfs subvolume says 00:31; /proc/locks names the superblock, 00:2f
    const btrfs: LockableFile[] = [{ name: 'ibdata1', inode: 257n, device: { major: 0, minor: 0x31 } }];
    const matches = matchLocks(parseProcLocks(PROC_LOCKS), btrfs);
    expect(matches).toHaveLength(1);
    expect(matches[0]?.lock.kind).toBe('OFDLCK');
    expect(matchLocks(parseProcLocks('1: POSIX  ADVISORY  WRITE 7 08:01:257 0 EOF'), btrfs)).toEqual([]);
  });

  it('nothing locked, nothing matched', () => {
    expect(matchLocks([], files)).toEqual([]);
    expect(matchLocks(parseProcLocks(PROC_LOCKS), [])).toEqual([]);
  });
});

// As read with a btrfs volume at /data (its superblock 0:41), a subvolume mounted at /data/mysql
// (stat() says 0:43 for its files), a tmpfs under the datadir, and a mount point with a space.
const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw',
  '44 22 0:41 / /data rw,relatime shared:30 - btrfs /dev/loop2 rw,subvolid=5,subvol=/',
  '45 44 0:41 /mysql /data/mysql rw,relatime shared:31 - btrfs /dev/loop2 rw,subvolid=256,subvol=/mysql',
  '46 45 0:50 / /data/mysql/tmp rw,relatime shared:32 - tmpfs tmpfs rw,size=1024k',
  '47 22 0:51 / /mnt/my\\040disk rw,relatime shared:33 - tmpfs tmpfs rw',
  '',
].join('\n');

describe('mount devices', () => {
  it('parses device and mount point, unescaping octal', () => {
    const mounts = parseMountInfo(MOUNTINFO);
    expect(mounts).toHaveLength(5);
    expect(mounts[1]).toEqual({ device: { major: 0, minor: 41 }, mountPoint: '/data' });
    expect(mounts[4]?.mountPoint).toBe('/mnt/my disk');
  });

  it('the mount holding the datadir (the longest ancestor) and the mounts below it', () => {
    const mounts = parseMountInfo(MOUNTINFO);
    expect(mountDevicesFor('/data/mysql', mounts)).toEqual([{ major: 0, minor: 41 }, { major: 0, minor: 50 }]);
    expect(mountDevicesFor('/data/other/db', mounts)).toEqual([{ major: 0, minor: 41 }]);
    expect(mountDevicesFor('/var/lib/mysql', mounts)).toEqual([{ major: 254, minor: 0 }]);
    expect(mountDevicesFor('/data/mysqlx', mounts)).toEqual([{ major: 0, minor: 41 }]);
  });

  it('with mount devices, a btrfs lock matches by the superblock device, and another btrfs with the same inode does not', () => {
    const files: LockableFile[] = [{ name: 'ibdata1', inode: 257n, device: { major: 0, minor: 43 } }];
    const devices = mountDevicesFor('/data/mysql', parseMountInfo(MOUNTINFO));
    // /proc/locks writes the device in hex: 00:29 is the superblock 0:41, 00:30 another btrfs (0:48)
    expect(matchLocks(parseProcLocks('1: POSIX  ADVISORY  WRITE 4242 00:30:257 0 EOF'), files, devices)).toEqual([]);
    expect(matchLocks(parseProcLocks('1: POSIX  ADVISORY  WRITE 4242 00:30:257 0 EOF'), files)).toHaveLength(1); // loose without mountinfo
    const both = parseProcLocks(['1: POSIX  ADVISORY  WRITE 4242 00:30:257 0 EOF', '2: POSIX  ADVISORY  WRITE 4343 00:29:257 0 EOF'].join('\n'));
    expect(matchLocks(both, files, devices).map((m) => m.lock.pid)).toEqual([4343]);
  });
});

describe('parseParentPid', () => {
  it('reads the field after the command name, even when the name holds spaces and parentheses', () => {
    expect(parseParentPid('4242 (mariadbd) S 1 4242 4242 0 -1 4194560 ...')).toBe(1);
    expect(parseParentPid('77 (evil) S 9 (x)) R 1234 77 77 0 -1')).toBe(1234);
    expect(parseParentPid('not a stat line')).toBeNull();
  });
});

describe('isUnder', () => {
  it('the directory itself and paths below it, a deleted file included; not a sibling with the same prefix', () => {
    expect(isUnder('/var/lib/mysql', '/var/lib/mysql')).toBe(true);
    expect(isUnder('/var/lib/mysql/ibdata1', '/var/lib/mysql')).toBe(true);
    expect(isUnder('/var/lib/mysql/#sql-ib12.ibd (deleted)', '/var/lib/mysql')).toBe(true);
    expect(isUnder('/var/lib/mysql-old/ibdata1', '/var/lib/mysql')).toBe(false);
    expect(isUnder('socket:[12345]', '/var/lib/mysql')).toBe(false);
  });
});
