/**
 * A small real ext4 file system on a loop device, for tests where a disk must fill up.
 * `fill()` takes every free block with a file outside whatever the test writes to;
 * `destroy()` unmounts (lazily if it must), detaches the loop device and removes the image, and
 * is safe after a partial set-up or twice.
 */
import { mkdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { unmountAllUnder } from './btrfs.js';

export interface LoopFs {
  mountPoint: string;
  loopDevice: string;
  image: string;
  /** Bytes an unprivileged writer can still write (what the agent's space checks read). */
  freeBytes(): Promise<number>;
  /** Writes `mountPoint/name` until the file system is full; resolves with the bytes it took. */
  fill(name: string): Promise<number>;
  destroy(): Promise<void>;
}

export async function createLoopFs(options: { baseDir: string; sizeBytes: number }): Promise<LoopFs> {
  const image = join(options.baseDir, 'ext4.img');
  const mountPoint = join(options.baseDir, 'mnt');
  let loopDevice = '';

  const destroy = async (): Promise<void> => {
    await unmountAllUnder(mountPoint);
    if (loopDevice) {
      await execa('losetup', ['-d', loopDevice], { reject: false });
      loopDevice = '';
    }
    await rm(image, { force: true });
  };

  const freeBytes = async (): Promise<number> => {
    const fs = await statfs(mountPoint);
    return fs.bavail * fs.bsize;
  };

  try {
    await mkdir(mountPoint, { recursive: true });
    await execa('truncate', ['-s', String(options.sizeBytes), image]);
    loopDevice = (await execa('losetup', ['--find', '--show', image])).stdout.trim();
    // -m 0: no blocks reserved for root, so "free" means the same to root and to statfs' bavail.
    await execa('mkfs.ext4', ['-q', '-F', '-m', '0', loopDevice]);
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
    freeBytes,
    async fill(name) {
      // dd stops with ENOSPC (exit 1) once the last block is taken: that is the point.
      const before = await freeBytes();
      const dd = await execa('dd', ['if=/dev/zero', `of=${join(mountPoint, name)}`, 'bs=1M', 'status=none'], { reject: false });
      if (!/No space left on device/.test(dd.stderr)) throw new Error(`dd did not fill ${mountPoint}: exit ${dd.exitCode}: ${dd.stderr}`);
      return before - (await freeBytes());
    },
    destroy,
  };
}
