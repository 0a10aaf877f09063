/** Disk usage of a directory tree and free space of its file system. */
import { lstat, opendir, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';

function isVanished(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Bytes actually allocated under `root` (like `du -s --block-size=1`): st_blocks × 512 of every
 * entry, symlinks counted as links and never followed, hard links counted once. Files that
 * vanish during the walk (MySQL running) are skipped.
 */
export async function measureDiskUsage(root: string, signal?: AbortSignal): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const pending = [root];
  while (pending.length > 0) {
    if (signal?.aborted) throw new SeedwireError('SEEDWIRE_CANCELED', `measuring the size of ${root} was canceled`);
    const path = pending.pop() as string;
    let stat;
    try {
      stat = await lstat(path, { bigint: true });
    } catch (error) {
      if (path !== root && isVanished(error)) continue;
      throw error;
    }
    if (stat.nlink > 1n && !stat.isDirectory()) {
      const key = `${stat.dev}:${stat.ino}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    total += Number(stat.blocks) * 512;
    if (!stat.isDirectory()) continue;
    try {
      for await (const entry of await opendir(path)) pending.push(join(path, entry.name));
    } catch (error) {
      if (path !== root && isVanished(error)) continue;
      throw error;
    }
  }
  return total;
}

/**
 * Bytes available to an unprivileged writer on the file system holding `path`; with
 * `nearestExisting`, a path that does not exist yet is measured at its nearest existing parent.
 */
export async function measureFreeSpace(path: string, options: { nearestExisting?: boolean } = {}): Promise<number> {
  let probe = path;
  for (;;) {
    try {
      const stats = await statfs(probe);
      return stats.bavail * stats.bsize;
    } catch (error) {
      if (!options.nearestExisting || (error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(probe) === probe) throw error;
      probe = dirname(probe);
    }
  }
}
