/**
 * Path-safe writes under a root for the receiver. The stream is untrusted: every ancestor of a
 * path is checked with lstat one component at a time (a symlink or a non-directory there is
 * SEEDWIRE_PATH_ESCAPE), files are opened with O_NOFOLLOW, and symlinks are only ever created,
 * never written through. Paths were already checked syntactically by format.validateRecordPath.
 */
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readlink, rm, symlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import { validateRecordPath } from './format.js';

export class SafeTree {
  /** Relative directories known to be real directories inside root ('' is root itself). */
  private readonly verifiedDirs = new Set<string>(['']);

  constructor(readonly root: string) {}

  async makeDir(rel: string, mode: number): Promise<void> {
    const abs = await this.resolveParent(rel);
    const st = await lstatOrNull(abs);
    if (st === null) {
      await mkdir(abs);
    } else if (st.isSymbolicLink()) {
      throw escape(rel, 'is a symlink where a directory is expected');
    } else if (!st.isDirectory()) {
      await rm(abs, { force: true });
      await mkdir(abs);
    }
    await chmod(abs, mode);
    this.verifiedDirs.add(rel);
  }

  /**
   * Opens a regular file for writing (and reading, for resume's re-hash) without following a
   * symlink at its last component either.
   */
  async openFile(rel: string, truncate: boolean): Promise<FileHandle> {
    const abs = await this.resolveParent(rel);
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | (truncate ? constants.O_TRUNC : 0);
    try {
      const fh = await open(abs, flags, 0o600);
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw escape(rel, 'is not a regular file');
      }
      return fh;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw escape(rel, 'is a symlink; refusing to write through it');
      throw error;
    }
  }

  async makeSymlink(rel: string, target: string): Promise<void> {
    const abs = await this.resolveParent(rel);
    const st = await lstatOrNull(abs);
    if (st !== null) {
      if (st.isSymbolicLink() && (await readlink(abs)) === target) return; // a resume replaying it
      if (st.isDirectory()) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `symlink record ${rel} would replace a directory`);
      await rm(abs, { force: true });
    }
    await symlink(target, abs);
  }

  /** Checks every ancestor of `rel` is a real directory inside root, creating missing ones. */
  private async resolveParent(rel: string): Promise<string> {
    validateRecordPath(rel);
    const parts = rel.split('/');
    let dir = '';
    for (let i = 0; i < parts.length - 1; i += 1) {
      dir = dir === '' ? (parts[i] as string) : `${dir}/${parts[i] as string}`;
      if (this.verifiedDirs.has(dir)) continue;
      const abs = join(this.root, dir);
      const st = await lstatOrNull(abs);
      if (st === null) {
        await mkdir(abs, { mode: 0o700 });
      } else if (st.isSymbolicLink()) {
        throw escape(rel, `its parent ${dir} is a symlink`);
      } else if (!st.isDirectory()) {
        throw escape(rel, `its parent ${dir} is not a directory`);
      }
      this.verifiedDirs.add(dir);
    }
    return join(this.root, rel);
  }
}

function escape(rel: string, why: string): SeedwireError {
  return new SeedwireError('SEEDWIRE_PATH_ESCAPE', `refusing path ${JSON.stringify(rel)}: ${why}`);
}

async function lstatOrNull(abs: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(abs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
