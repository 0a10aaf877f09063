/**
 * A real btrfs file system on a loop device for system tests. `destroy()` unmounts everything
 * under the base directory (lazily if it must), detaches the loop device and removes the image,
 * and is safe to call after a partial set-up or twice.
 */
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

export interface BtrfsVolume {
  /** Where the file system's top level is mounted. */
  mountPoint: string;
  loopDevice: string;
  image: string;
  /** Creates a subvolume at mountPoint/name and returns its path. */
  createSubvolume(name: string): Promise<string>;
  destroy(): Promise<void>;
}

export interface BtrfsAvailability {
  ok: boolean;
  reason: string;
}

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** Whether this machine can make a btrfs on a loop device (root, the tools, kernel support). */
export async function btrfsAvailable(): Promise<BtrfsAvailability> {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (loop devices and mount)' };
  for (const tool of ['btrfs', 'mkfs.btrfs', 'losetup', 'mount', 'umount']) {
    if (!(await onPath(tool))) return { ok: false, reason: `${tool} is not installed (apt-get install btrfs-progs util-linux)` };
  }
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\bbtrfs\b/.test(filesystems)) {
    const probe = await execa('modprobe', ['btrfs'], { reject: false });
    if (probe.exitCode !== 0) return { ok: false, reason: 'the kernel has no btrfs support (modprobe btrfs failed)' };
  }
  try {
    await access('/dev/loop-control', constants.R_OK | constants.W_OK);
  } catch {
    return { ok: false, reason: '/dev/loop-control is not available (container without loop devices?)' };
  }
  return { ok: true, reason: '' };
}

async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((target): target is string => target !== undefined && (target === dir || target.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length); // deepest first
}

/** Unmounts every mount at or below `dir`, lazily when a plain umount fails. */
/** Unmounts every mount of `device`, wherever it is mounted. */
async function unmountDevice(device: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const targets = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((line) => line.split(' '))
      .filter((fields) => fields[0] === device && fields[1])
      .map((fields) => fields[1]!.replace(/\\040/g, ' '))
      .sort((a, b) => b.length - a.length);
    if (targets.length === 0) return;
    for (const target of targets) {
      const plain = await execa('umount', [target], { reject: false });
      if (plain.exitCode !== 0) await execa('umount', ['-l', target], { reject: false });
    }
  }
}

export async function unmountAllUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const targets = await mountsUnder(dir);
    if (targets.length === 0) return;
    for (const target of targets) {
      const plain = await execa('umount', [target], { reject: false });
      if (plain.exitCode !== 0) await execa('umount', ['-l', target], { reject: false });
    }
  }
}

export async function createBtrfs(options: { baseDir: string; sizeBytes?: number }): Promise<BtrfsVolume> {
  const image = join(options.baseDir, 'btrfs.img');
  const mountPoint = join(options.baseDir, 'mnt');
  let loopDevice = '';

  const destroy = async (): Promise<void> => {
    await unmountAllUnder(options.baseDir);
    // A snapshot of this file system may be mounted anywhere (a seed's mount point): those too.
    if (loopDevice) await unmountDevice(loopDevice);
    if (loopDevice) {
      await execa('losetup', ['-d', loopDevice], { reject: false });
      loopDevice = '';
    }
    await rm(image, { force: true });
  };

  try {
    await mkdir(mountPoint, { recursive: true });
    await execa('truncate', ['-s', String(options.sizeBytes ?? 1024 ** 3), image]);
    loopDevice = (await execa('losetup', ['--find', '--show', image])).stdout.trim();
    await execa('mkfs.btrfs', ['-q', loopDevice]);
    await execa('mount', [loopDevice, mountPoint]);
  } catch (error) {
    await destroy();
    throw error;
  }

  return {
    mountPoint,
    get loopDevice() {
      return loopDevice;
    },
    image,
    async createSubvolume(name) {
      const path = join(mountPoint, name);
      await execa('btrfs', ['subvolume', 'create', path]);
      return path;
    },
    destroy,
  };
}
