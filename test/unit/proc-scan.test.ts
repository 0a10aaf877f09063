/**
 * findOpenFilesUnder over a stand-in /proc: PID/fd/N symlinks in a temp directory, read by the
 * same readdir/readlink calls as the real one.
 */
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findOpenFilesUnder, lastingUses } from '../../agent/mysql/proc-scan.js';

describe('findOpenFilesUnder', () => {
  let procRoot: string;
  const root = '/srv/mysql';

  async function addProcess(pid: number, comm: string, files: string[]): Promise<void> {
    await mkdir(join(procRoot, String(pid), 'fd'), { recursive: true });
    await writeFile(join(procRoot, String(pid), 'comm'), `${comm}\n`);
    for (const [fd, file] of files.entries()) await symlink(file, join(procRoot, String(pid), 'fd', String(fd + 3)));
  }

  beforeEach(async () => {
    procRoot = await mkdtemp(join(tmpdir(), 'sw-proc-'));
  });
  afterEach(async () => {
    await rm(procRoot, { recursive: true, force: true });
  });

  it('names processes with a file under the root; with `seen`, looks only at processes it has not cleared before', async () => {
    await addProcess(10, 'mariadbd', ['/dev/null', `${root}/ibdata1`]);
    await addProcess(11, 'bash', ['/dev/null', '/srv/mysql-old/ibdata1']);
    const seen = new Set<number>();
    expect(await findOpenFilesUnder(root, { exclude: new Set(), procRoot, seen })).toEqual([{ pid: 10, comm: 'mariadbd', file: 'ibdata1' }]);
    // Cleared processes are remembered; one that uses the datadir is not (it must keep refusing).
    expect([...seen]).toEqual([11]);

    await addProcess(12, 'cp', [`${root}/db1/t1.ibd (deleted)`]);
    await symlink(`${root}/aria_log_control`, join(procRoot, '11', 'fd', '9')); // an old process opens a datadir file later
    expect(await findOpenFilesUnder(root, { exclude: new Set([10]), procRoot, seen })).toEqual([{ pid: 12, comm: 'cp', file: 'db1/t1.ibd (deleted)' }]);
    // Without `seen` (a complete check) every process is read again.
    expect(await findOpenFilesUnder(root, { exclude: new Set(), procRoot })).toEqual([
      { pid: 10, comm: 'mariadbd', file: 'ibdata1' },
      { pid: 11, comm: 'bash', file: 'aria_log_control' },
      { pid: 12, comm: 'cp', file: 'db1/t1.ibd (deleted)' },
    ]);
  });

  it('counts only processes that keep a datadir file open across the re-checks; a transient reader and a process that exits do not', async () => {
    await addProcess(10, 'mariadbd', ['/dev/null', `${root}/ibdata1`]);
    await addProcess(20, 'node', [`${root}/.seedwire-incomplete`]); // another tool reading the marker
    await addProcess(30, 'du', [`${root}/db1`]);
    await addProcess(40, 'cp', [`${root}/a.ibd`]);
    const found = await findOpenFilesUnder(root, { exclude: new Set(), procRoot, limit: 10 });
    expect(found.map((use) => use.pid)).toEqual([10, 20, 30, 40]);
    let looks = 0;
    const pause = async (): Promise<void> => {
      looks += 1;
      if (looks === 1) {
        await unlink(join(procRoot, '20', 'fd', '3')); // the reader closed the marker
        await rm(join(procRoot, '30'), { recursive: true }); // du exited
        await unlink(join(procRoot, '40', 'fd', '3'));
        await symlink(`${root}/b.ibd`, join(procRoot, '40', 'fd', '4')); // cp moved on to the next file
      }
      if (looks === 2) await symlink(`${root}/ib_logfile0`, join(procRoot, '20', 'fd', '5')); // back, but it missed a look
    };
    expect(await lastingUses(found, root, { rechecks: 2, pause, procRoot })).toEqual([
      { pid: 10, comm: 'mariadbd', file: 'ibdata1' },
      { pid: 40, comm: 'cp', file: 'b.ibd' },
    ]);
    expect(looks).toBe(2);
    // Nothing found: no pause at all.
    expect(await lastingUses([], root, { rechecks: 2, pause, procRoot })).toEqual([]);
    expect(looks).toBe(2);
  });
});
