/**
 * `/proc/locks` as data, and which of its locks sit on a datadir's files. Pure: parsed and matched
 * on literal text in the unit tests; agent/mysql/guard.ts reads the file and stats the datadir.
 */

export interface ProcLock {
  /** POSIX (fcntl), FLOCK, OFDLCK (open file description), LEASE, ... */
  kind: string;
  access: string;
  /** The holder; null for OFD locks, which belong to no process (`-1`). */
  pid: number | null;
  major: number;
  minor: number;
  inode: bigint;
  /** A `->` line: a process waiting for the lock above it, not holding one. */
  waiting: boolean;
}

export interface DeviceId {
  major: number;
  minor: number;
}

/** A file of the datadir, as the lock check needs it. */
export interface LockableFile {
  /** Path relative to the datadir, for the refusal message. */
  name: string;
  inode: bigint;
  device: DeviceId;
}

export interface LockMatch {
  lock: ProcLock;
  file: LockableFile;
}

// "1: POSIX  ADVISORY  WRITE 4242 08:01:1234567 0 EOF" and "1: -> POSIX  ADVISORY  WRITE ..."
const LOCK_LINE = /^\s*\d+:\s+(->\s+)?(\S+)\s+\S+\s+(\S+)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/i;

export function parseProcLocks(text: string): ProcLock[] {
  const locks: ProcLock[] = [];
  for (const line of text.split('\n')) {
    const m = LOCK_LINE.exec(line);
    if (!m) continue;
    const pid = Number(m[4]);
    locks.push({
      kind: m[2] as string,
      access: m[3] as string,
      pid: pid > 0 ? pid : null,
      major: Number.parseInt(m[5] as string, 16),
      minor: Number.parseInt(m[6] as string, 16),
      inode: BigInt(m[7] as string),
      waiting: m[1] !== undefined,
    });
  }
  return locks;
}

/** major/minor of a stat() st_dev, as glibc's gnu_dev_major/gnu_dev_minor split it. */
export function splitDevice(dev: bigint): DeviceId {
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n)),
  };
}

export interface MountEntry {
  device: DeviceId;
  mountPoint: string;
}

/** `/proc/self/mountinfo`: each mount's device (as /proc/locks names it) and its mount point. */
export function parseMountInfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const device = /^(\d+):(\d+)$/.exec(fields[2] ?? '');
    const mountPoint = fields[4];
    if (!device || mountPoint === undefined) continue;
    // Mount points escape space, tab, newline and backslash as octal.
    const unescaped = mountPoint.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
    mounts.push({ device: { major: Number(device[1]), minor: Number(device[2]) }, mountPoint: unescaped });
  }
  return mounts;
}

function isWithin(path: string, dir: string): boolean {
  return path === dir || dir === '/' || path.startsWith(`${dir}/`);
}

/**
 * The devices /proc/locks may name for files under `root` (a real path): the mount holding it
 * (its longest mounted ancestor) and every mount below it. On btrfs and overlayfs these differ
 * from what stat() reports for the files.
 */
export function mountDevicesFor(root: string, mounts: readonly MountEntry[]): DeviceId[] {
  const holding = mounts.filter((m) => isWithin(root, m.mountPoint)).sort((a, b) => b.mountPoint.length - a.mountPoint.length)[0];
  const below = mounts.filter((m) => m.mountPoint !== root && isWithin(m.mountPoint, root));
  return [...(holding ? [holding.device] : []), ...below.map((m) => m.device)];
}

function sameDevice(a: DeviceId, b: DeviceId): boolean {
  return a.major === b.major && a.minor === b.minor;
}

/**
 * The locks held (or waited for) on `files`. A lock matches a file by inode, and by device: the
 * file's own stat() device, or one of `mountDevices` (what /proc/locks names for a btrfs
 * subvolume or an overlay, whose stat() devices differ). Without mount devices (mountinfo
 * unreadable), an inode on any anonymous device (major 0) matches a file on an anonymous device:
 * that can refuse wrongly (safe) but never lets a held lock through (not safe).
 */
export function matchLocks(locks: readonly ProcLock[], files: readonly LockableFile[], mountDevices: readonly DeviceId[] = []): LockMatch[] {
  const byInode = new Map<bigint, LockableFile[]>();
  for (const file of files) {
    const list = byInode.get(file.inode);
    if (list) list.push(file);
    else byInode.set(file.inode, [file]);
  }
  const matches: LockMatch[] = [];
  // A process waiting for a lock on a datadir file counts as much as its holder.
  for (const lock of locks) {
    for (const file of byInode.get(lock.inode) ?? []) {
      const onMount = mountDevices.some((device) => sameDevice(device, lock));
      const bothAnonymous = mountDevices.length === 0 && lock.major === 0 && file.device.major === 0;
      if (sameDevice(lock, file.device) || onMount || bothAnonymous) {
        matches.push({ lock, file });
        break;
      }
    }
  }
  return matches;
}
