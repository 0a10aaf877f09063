/** What /proc says about other processes: their names, parents, and open files under a directory. */
import { readdir, readFile, readlink } from 'node:fs/promises';

export const PROC_ROOT = '/proc';

export interface OpenFileUse {
  pid: number;
  comm: string;
  /** Path relative to the scanned directory ('.' for the directory itself). */
  file: string;
}

/** Processes looked at in parallel while scanning. */
const SCAN_BATCH = 64;
const DELETED_SUFFIX = ' (deleted)';

async function listPids(procRoot: string): Promise<number[]> {
  return (await readdir(procRoot)).filter((name) => /^\d+$/.test(name)).map(Number);
}

/** The process's short name (`comm`), or `pid N` when it is gone or unreadable. */
export async function readComm(pid: number, procRoot = PROC_ROOT): Promise<string> {
  try {
    return (await readFile(`${procRoot}/${pid}/comm`, 'utf8')).trim() || `pid ${pid}`;
  } catch {
    return `pid ${pid}`;
  }
}

/** The parent pid from a `/proc/PID/stat` line; the name in parentheses may hold spaces and `)`. */
export function parseParentPid(stat: string): number | null {
  const end = stat.lastIndexOf(')');
  if (end === -1) return null;
  const fields = stat.slice(end + 2).split(' ');
  const ppid = Number(fields[1]);
  return Number.isInteger(ppid) && ppid >= 0 ? ppid : null;
}

/** Every live descendant of `ancestor` (children of children included). */
export async function listDescendants(ancestor: number, procRoot = PROC_ROOT): Promise<Set<number>> {
  const children = new Map<number, number[]>();
  for (const pid of await listPids(procRoot)) {
    const stat = await readFile(`${procRoot}/${pid}/stat`, 'utf8').catch(() => null);
    const ppid = stat === null ? null : parseParentPid(stat);
    if (ppid === null) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const found = new Set<number>();
  const pending = [ancestor];
  while (pending.length > 0) {
    for (const child of children.get(pending.pop() as number) ?? []) {
      if (found.has(child)) continue;
      found.add(child);
      pending.push(child);
    }
  }
  return found;
}

/** Whether `path` (a readlink of an fd) is `root` or lies under it. */
export function isUnder(path: string, root: string): boolean {
  const clean = path.endsWith(DELETED_SUFFIX) ? path.slice(0, -DELETED_SUFFIX.length) : path;
  return clean === root || clean.startsWith(root.endsWith('/') ? root : `${root}/`);
}

function relativeName(path: string, root: string): string {
  const rest = path.slice(root.length).replace(/^\/+/, '');
  return rest === '' ? '.' : rest;
}

async function openFileUnder(pid: number, root: string, procRoot: string): Promise<string | null> {
  let fds: string[];
  try {
    fds = await readdir(`${procRoot}/${pid}/fd`);
  } catch {
    // Gone, a kernel thread, or not ours to read (an unprivileged agent): /proc/locks, the pid
    // file and the socket still cover a server we cannot look into.
    return null;
  }
  const targets = await Promise.all(fds.map((fd) => readlink(`${procRoot}/${pid}/fd/${fd}`).catch(() => null)));
  const hit = targets.find((target): target is string => target !== null && isUnder(target, root));
  return hit === undefined ? null : relativeName(hit, root);
}

/**
 * Processes (other than `exclude`) with a file open under `root`, a real path. At most `limit`
 * are reported, one file each. Pids in `seen` are skipped, and every pid looked at is added to it
 * (a watch's re-checks look only at processes that are new since the last complete one).
 */
export async function findOpenFilesUnder(root: string, options: { exclude: ReadonlySet<number>; limit?: number; procRoot?: string; seen?: Set<number> }): Promise<OpenFileUse[]> {
  const procRoot = options.procRoot ?? PROC_ROOT;
  const limit = options.limit ?? 3;
  const seen = options.seen;
  const pids = (await listPids(procRoot)).filter((pid) => !options.exclude.has(pid) && !seen?.has(pid));
  const found: OpenFileUse[] = [];
  for (let i = 0; i < pids.length && found.length < limit; i += SCAN_BATCH) {
    const batch = pids.slice(i, i + SCAN_BATCH);
    const files = await Promise.all(batch.map((pid) => openFileUnder(pid, root, procRoot)));
    for (const [index, file] of files.entries()) {
      const pid = batch[index] as number;
      if (file !== null && found.length < limit) found.push({ pid, comm: await readComm(pid, procRoot), file });
      // A process found using the datadir is looked at again next time: it must keep refusing.
      if (file === null) seen?.add(pid);
    }
  }
  return found;
}

/**
 * The uses whose process still has a file open under `root` after each of `rechecks` pauses: a
 * reader that opens a file and closes it again (another tool's walk of the datadir, `du`, a log
 * shipper) is not a process that uses the datadir, while a server keeps its files open. A process
 * that is gone no longer counts. Each use names the file held at the last look. `pause` waits
 * between looks (a test passes its own).
 */
export async function lastingUses(
  uses: readonly OpenFileUse[],
  root: string,
  options: { rechecks: number; pause: () => Promise<void>; procRoot?: string },
): Promise<OpenFileUse[]> {
  const procRoot = options.procRoot ?? PROC_ROOT;
  let lasting = [...uses];
  for (let look = 0; look < options.rechecks && lasting.length > 0; look++) {
    await options.pause();
    const files = await Promise.all(lasting.map((use) => openFileUnder(use.pid, root, procRoot)));
    lasting = lasting.flatMap((use, index) => {
      const file = files[index];
      return file === null || file === undefined ? [] : [{ ...use, file }];
    });
  }
  return lasting;
}

/** Whether a process with this pid exists (EPERM: it exists but is not ours to signal). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
