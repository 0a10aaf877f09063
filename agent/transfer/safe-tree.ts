/**
 * The tree writer: the only code that creates what a seed stream describes, and the owner of
 * path safety at the file system's edge. The stream is untrusted:
 * - every path passes record-rules.checkRecordPath again here (whatever decoded it);
 * - every ancestor is checked with lstat one component at a time (a symlink or a non-directory
 *   there is SEEDWIRE_PATH_ESCAPE), so no write ever goes through a symlink, even one this
 *   stream created a moment ago;
 * - files are opened with O_NOFOLLOW and must be regular files;
 * - symlinks are only created, never followed, and only with a target inside the root unless
 *   `allowExternalSymlinks` (agent config receive.allowExternalSymlinks);
 * - modes keep permission bits only (no setuid, setgid or sticky).
 */
import { close as closeFd, constants, fchmodSync, fdatasync, fstatSync, futimesSync, openSync, closeSync, writeSync, writevSync } from 'node:fs';
import { chmod, lstat, mkdir, open, readlink, rm, symlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SeedwireError } from '../../shared/errors.js';
import { checkRecordPath, checkSymlinkTarget, permissionBits, refuseRecord } from './record-rules.js';

/** What the tree writer needs of a file it writes: a FileHandle, or a SmallFile. */
export interface WritableFile {
  write(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }>;
  chmod(mode: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
  datasync(): Promise<void>;
  close(): Promise<void>;
}

const fdatasyncAsync = promisify(fdatasync);
const closeAsync = promisify(closeFd);

/** Runs a synchronous file system call as a settled promise (a throw becomes a rejection). */
function settled<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error as Error);
  }
}

/**
 * A small file written with synchronous calls, as `tar -x` does: open, write, chmod and utimes of
 * a few kilobytes take microseconds in the kernel, where each thread-pool round trip of a
 * FileHandle waits its turn behind other work (about 0.5 ms each on a busy 2-core machine, four
 * in a row per file). The seed's ~2,000 small tables moved at 41 MB/s over a 1 Gbit/s link that
 * way (docs/performance.md, "Small files"). fdatasync and close, batched at the checkpoint,
 * still go to the thread pool, all at once.
 */
class SmallFile implements WritableFile {
  constructor(private readonly fd: number) {}
  write(buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    return settled(() => ({ bytesWritten: writeSync(this.fd, buf, offset, length, position) }));
  }
  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    return settled(() => ({ bytesWritten: writevSync(this.fd, buffers, position) }));
  }
  chmod(mode: number): Promise<void> {
    return settled(() => fchmodSync(this.fd, mode));
  }
  utimes(atime: number, mtime: number): Promise<void> {
    return settled(() => futimesSync(this.fd, atime, mtime));
  }
  datasync(): Promise<void> {
    return fdatasyncAsync(this.fd);
  }
  close(): Promise<void> {
    return closeAsync(this.fd);
  }
}

export interface SafeTreeOptions {
  /** Accept symlinks whose target is outside the root (datadirs with tablespaces elsewhere). */
  allowExternalSymlinks?: boolean;
}

export class SafeTree {
  /** Relative directories known to be real directories inside root ('' is root itself). */
  private readonly verifiedDirs = new Set<string>(['']);
  private readonly allowExternalSymlinks: boolean;

  constructor(
    readonly root: string,
    options: SafeTreeOptions = {},
  ) {
    this.allowExternalSymlinks = options.allowExternalSymlinks ?? false;
  }

  async makeDir(rel: string, mode: number): Promise<void> {
    const abs = await this.resolveParent(rel);
    const st = await lstatOrNull(abs);
    if (st === null) {
      await makeDirOrFindOne(abs, rel);
    } else if (st.isSymbolicLink()) {
      throw refuseRecord(rel, 'it is a symlink where a directory is expected');
    } else if (!st.isDirectory()) {
      await rm(abs, { force: true });
      await makeDirOrFindOne(abs, rel);
    }
    await chmod(abs, permissionBits(mode));
    this.verifiedDirs.add(rel);
  }

  /**
   * Opens a regular file for writing (and reading, for resume's re-hash) without following a
   * symlink at its last component either.
   */
  async openFile(rel: string, truncate: boolean): Promise<FileHandle> {
    const abs = await this.resolveParent(rel);
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK | (truncate ? constants.O_TRUNC : 0);
    let fh: FileHandle;
    try {
      fh = await open(abs, flags, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw refuseRecord(rel, 'it is a symlink; refusing to write through it');
      throw error;
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw refuseRecord(rel, 'it is not a regular file');
    }
    return fh;
  }

  /**
   * openFile for a small whole file (SmallFile), with the same checks: created or truncated with
   * O_NOFOLLOW, refused unless a regular file. Only for files the seed writes whole and small:
   * the calls block the event loop for as long as the kernel takes.
   */
  async openSmallFile(rel: string): Promise<WritableFile> {
    const abs = await this.resolveParent(rel);
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_TRUNC;
    let fd: number;
    try {
      fd = openSync(abs, flags, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw refuseRecord(rel, 'it is a symlink; refusing to write through it');
      throw error;
    }
    try {
      if (!fstatSync(fd).isFile()) throw refuseRecord(rel, 'it is not a regular file');
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new SmallFile(fd);
  }

  /** Applies a received file's mode: permission bits only. */
  async setFileMode(fh: WritableFile, mode: number): Promise<void> {
    await fh.chmod(permissionBits(mode));
  }

  async makeSymlink(rel: string, target: string): Promise<void> {
    checkRecordPath(rel);
    checkSymlinkTarget(this.root, rel, target, this.allowExternalSymlinks);
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
    checkRecordPath(rel);
    const parts = rel.split('/');
    let dir = '';
    for (let i = 0; i < parts.length - 1; i += 1) {
      dir = dir === '' ? (parts[i] as string) : `${dir}/${parts[i] as string}`;
      if (this.verifiedDirs.has(dir)) continue;
      const abs = join(this.root, dir);
      const st = await lstatOrNull(abs);
      if (st === null) {
        await makeDirOrFindOne(abs, rel);
      } else if (st.isSymbolicLink()) {
        throw refuseRecord(rel, `its parent ${dir} is a symlink; refusing to write through it`);
      } else if (!st.isDirectory()) {
        throw refuseRecord(rel, `its parent ${dir} is not a directory`);
      }
      this.verifiedDirs.add(dir);
    }
    return join(this.root, rel);
  }
}

/**
 * mkdir, where another lane of the same seed may have made the same directory a moment before
 * (every lane carries every directory record): that one is accepted only if it is a real directory.
 */
async function makeDirOrFindOne(abs: string, rel: string): Promise<void> {
  try {
    await mkdir(abs, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const st = await lstat(abs);
    if (st.isSymbolicLink() || !st.isDirectory()) throw refuseRecord(rel, 'a directory on its path was replaced while it was being made');
  }
}

async function lstatOrNull(abs: string): Promise<Awaited<ReturnType<typeof lstat>> | null> {
  try {
    return await lstat(abs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
