/**
 * The datadir guard: the one check every path that deletes or overwrites a datadir goes through
 * (delete-mysql-datadir, and a seed's prepare, receive, finalize and cleanup on the target).
 *
 * A datadir is "unused" only if ALL of these hold; each that fails is named in the refusal:
 * - mysql.statusCommand answered "stopped" (a non-zero exit) in time. A timeout, a kill, a
 *   spawn failure or an exit of 126/127 (the command could not run) is a refusal, never "stopped";
 * - no other process has a file open under the datadir (/proc/PID/fd) and still has one when
 *   looked at again twice, 150 ms apart (a reader that closes it at once is not using it);
 * - no process holds or waits for a lock on one of its files (/proc/locks: mysqld holds fcntl
 *   locks on ibdata1 and aria_log_control);
 * - no live process owns a pid file (`*.pid` in the datadir, mysql.pidFile);
 * - nothing accepts connections on a socket (socket files in the datadir, mysql.socket,
 *   backup.socket).
 * The status command does not decide alone: a wrong one (a unit of another name always exits 3)
 * must not let a running server's files go.
 */
import { lstat, open, readdir, readFile, realpath } from 'node:fs/promises';
import { constants, type Dirent } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { AgentConfig, MysqlConfig } from '../config/schema.js';
import { AGENT_LIMITS } from '../limits.js';
import { matchLocks, mountDevicesFor, parseMountInfo, parseProcLocks, splitDevice, type LockableFile } from './proc-locks.js';
import { findOpenFilesUnder, isProcessAlive, lastingUses, listDescendants, PROC_ROOT, readComm } from './proc-scan.js';
import { describeFailure, runnerFor, type Runner } from './runner.js';
import { STATUS_TIMEOUT_MS } from './service.js';

/** How often a running seed-receive checks again that nothing started on its datadir (agent/limits.ts). */
export const GUARD_RECHECK_MS = AGENT_LIMITS.datadirRecheckMs;
/**
 * Every how many re-checks of a watch one is complete. A complete re-check is the whole guard;
 * the ones in between leave out mysql.statusCommand (spawning it cost the busy receiving agent
 * more than all the /proc reads together, docs/performance.md) and read the open files only of
 * processes not seen since the last complete one, and stat only datadir files not seen since.
 * They still see a server that starts: it is a new process, it locks its files (ibdata1,
 * aria_log_control; /proc/locks is read in full every time), writes its pid file and listens on
 * its socket. The first re-check and every GUARD_COMPLETE_EVERY-th after it are complete, so
 * anything else (an old process opening a datadir file) is seen within that many intervals.
 */
export const GUARD_COMPLETE_EVERY = 5;

export interface GuardDeps {
  mysql: MysqlConfig;
  /** backup.socket is the same server's socket when set. */
  backup?: AgentConfig['backup'];
  run: Runner;
  signal?: AbortSignal;
}

export interface GuardOptions {
  /** What the caller is about to do, for the refusal: "empty", "finalize the seed in", ... */
  action: string;
  /**
   * Ignore open files of the agent's own child processes (the backup extractor writing into the
   * datadir while a seed is received). Locks, pid files and sockets still count.
   */
  ignoreOwnChildren?: boolean;
  /** Run mysql.statusCommand (default true); a watch's re-checks in between leave it out. */
  statusCommand?: boolean;
  /** Look only at what earlier checks sharing this memo did not (a watch's re-checks in between). */
  memo?: GuardMemo;
  procRoot?: string;
}

/** What a watch's re-checks carry from one to the next; a complete re-check starts a new one. */
export interface GuardMemo {
  /** Processes whose open files were already read. */
  scannedPids: Set<number>;
  /** Datadir files (relative name) already stat'ed for the lock check, as of the last listing. */
  lockableFiles: Map<string, LockableFile>;
}

function newMemo(): GuardMemo {
  return { scannedPids: new Set(), lockableFiles: new Map() };
}

/** Refuses (SEEDWIRE_OP_REFUSED, naming everything found) unless the datadir is unused. */
export async function assertDatadirUnused(deps: GuardDeps, options: GuardOptions): Promise<void> {
  const findings = await inspectDatadirUse(deps, options);
  if (findings.length > 0) {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', `refusing to ${options.action} ${deps.mysql.datadir}: ${findings.join('; ')}`, { details: { findings } });
  }
}

/** Every reason the datadir is (or may be) in use; empty when it is safe to touch. */
export async function inspectDatadirUse(deps: GuardDeps, options: GuardOptions): Promise<string[]> {
  const procRoot = options.procRoot ?? PROC_ROOT;
  const root = await realpath(deps.mysql.datadir).catch(() => deps.mysql.datadir);
  const [status, files, locks, pidFiles, sockets] = await Promise.all([
    options.statusCommand === false ? [] : checkStatusCommand(deps),
    checkOpenFiles(root, options.ignoreOwnChildren === true, procRoot, options.memo),
    checkLocks(root, procRoot, options.memo),
    checkPidFiles(root, deps.mysql.pidFile, procRoot),
    checkSockets(root, [deps.mysql.socket, deps.backup?.socket]),
  ]);
  if (deps.signal?.aborted) throw new SeedwireError('SEEDWIRE_CANCELED', `checking ${deps.mysql.datadir} was canceled`);
  return [...status, ...files, ...locks, ...pidFiles, ...sockets];
}

async function checkStatusCommand(deps: GuardDeps): Promise<string[]> {
  const timeoutMs = Math.min(STATUS_TIMEOUT_MS, deps.mysql.commandTimeoutSeconds * 1000);
  let result;
  try {
    result = await deps.run(deps.mysql.statusCommand, { quiet: true, timeoutMs });
  } catch (error) {
    return [`mysql.statusCommand could not be run (${toSeedwireError(error).message})`];
  }
  if (result.isCanceled) throw new SeedwireError('SEEDWIRE_CANCELED', 'mysql.statusCommand was canceled');
  if (result.timedOut) return [`mysql.statusCommand did not answer within ${timeoutMs} ms (no answer is not "stopped")`];
  if (result.exitCode === null) return [`mysql.statusCommand ${describeFailure(result)}`];
  if (result.exitCode === 0) return ['mysql.statusCommand reports MySQL running (exit 0)'];
  if (result.exitCode === 126 || result.exitCode === 127) return [`mysql.statusCommand could not run (${describeFailure(result)})`];
  return [];
}

async function checkOpenFiles(root: string, ignoreOwnChildren: boolean, procRoot: string, memo: GuardMemo | undefined): Promise<string[]> {
  const exclude = ignoreOwnChildren ? await listDescendants(process.pid, procRoot) : new Set<number>();
  exclude.add(process.pid);
  const found = await findOpenFilesUnder(root, { exclude, procRoot, ...(memo ? { seen: memo.scannedPids } : {}) });
  // Only a process that keeps a datadir file open uses it: a reader that had one open for a moment
  // (another agent's or a monitor's walk of the datadir) no longer stops a seed (docs/reliability.md).
  const uses = await lastingUses(found, root, { rechecks: AGENT_LIMITS.guardOpenFileRechecks, pause: () => delay(AGENT_LIMITS.guardOpenFilePauseMs), procRoot });
  return uses.map((use) => `${use.comm} (pid ${use.pid}) has ${use.file === '.' ? 'the datadir' : use.file} open`);
}

/**
 * The datadir's files down to AGENT_LIMITS.lockScanDepth, with their inode and device. With a memo, a file
 * listed under the same name before is not stat'ed again, and names no longer listed are dropped
 * (so a recycled inode of a deleted file cannot match someone else's lock).
 */
async function listLockableFiles(root: string, memo: GuardMemo | undefined): Promise<LockableFile[]> {
  const listed = new Map<string, LockableFile>();
  const pending: Array<{ dir: string; prefix: string; depth: number }> = [{ dir: root, prefix: '', depth: 1 }];
  while (pending.length > 0 && listed.size < AGENT_LIMITS.lockScanMaxFiles) {
    const { dir, prefix, depth } = pending.pop() as { dir: string; prefix: string; depth: number };
    // The entry types come with the listing (lstat semantics: a link is neither file nor directory).
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
    for (const entry of entries) {
      const name = `${prefix}${entry.name}`;
      if (entry.isDirectory()) {
        if (depth < AGENT_LIMITS.lockScanDepth) pending.push({ dir: join(dir, entry.name), prefix: `${name}/`, depth: depth + 1 });
        continue;
      }
      if (!entry.isFile()) continue;
      const known = memo?.lockableFiles.get(name);
      if (known) {
        listed.set(name, known);
        continue;
      }
      const stat = await lstat(join(dir, entry.name), { bigint: true }).catch(() => null);
      if (stat?.isFile()) listed.set(name, { name, inode: stat.ino, device: splitDevice(stat.dev) });
    }
  }
  if (memo) memo.lockableFiles = listed;
  return [...listed.values()];
}

async function checkLocks(root: string, procRoot: string, memo: GuardMemo | undefined): Promise<string[]> {
  // Files first, then the locks: a lock read before a file was stat'ed may sit on an inode that
  // another process freed (closed and deleted its file) and our receiver reused for a new file in
  // between, which would refuse the seed for a lock that no longer exists.
  const files = await listLockableFiles(root, memo);
  const locks = parseProcLocks(await readFile(`${procRoot}/locks`, 'utf8'));
  // Others' locks on our own process are not ours to worry about; everything else counts.
  const candidates = locks.filter((lock) => lock.pid !== process.pid);
  if (candidates.length === 0) return [];
  const mounts = await readFile(`${procRoot}/self/mountinfo`, 'utf8').then(parseMountInfo, () => []);
  const matches = matchLocks(candidates, files, mountDevicesFor(root, mounts));
  const found: string[] = [];
  for (const { lock, file } of matches.slice(0, 3)) {
    const who = lock.pid === null ? 'a process (open file description lock)' : `${await readComm(lock.pid, procRoot)} (pid ${lock.pid})`;
    found.push(`${who} ${lock.waiting ? 'waits for' : 'holds'} a ${lock.kind} ${lock.access} lock on ${file.name}`);
  }
  return found;
}

/** The pid a pid file names; null when it names none. Never follows a link planted in the datadir. */
async function readPidFile(path: string, follow: boolean): Promise<number | null> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | (follow ? 0 : constants.O_NOFOLLOW));
  } catch {
    return null;
  }
  try {
    if (!(await handle.stat()).isFile()) return null;
    const buffer = Buffer.alloc(32);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const match = /^\s*(\d{1,10})\s*$/.exec(buffer.subarray(0, bytesRead).toString('latin1'));
    const pid = match ? Number(match[1]) : 0;
    return pid > 0 ? pid : null;
  } finally {
    await handle.close();
  }
}

async function checkPidFiles(root: string, configured: string | undefined, procRoot: string): Promise<string[]> {
  const names = (await readdir(root).catch(() => [] as string[])).filter((name) => name.endsWith('.pid'));
  const candidates = [...names.map((name) => ({ path: join(root, name), label: name, follow: false })), ...(configured ? [{ path: configured, label: configured, follow: true }] : [])];
  const found: string[] = [];
  for (const { path, label, follow } of candidates) {
    const pid = await readPidFile(path, follow);
    if (pid === null || pid === process.pid || !isProcessAlive(pid)) continue;
    found.push(`pid file ${label} names ${await readComm(pid, procRoot)} (pid ${pid}), which is running`);
  }
  return found;
}

/** Whether something accepts a connection on the unix socket at `path` (a timeout counts as yes). */
function probeSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (listening: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(listening);
    };
    const timer = setTimeout(() => done(true), AGENT_LIMITS.socketProbeMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function checkSockets(root: string, configured: ReadonlyArray<string | undefined>): Promise<string[]> {
  const inDatadir: string[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const stat = await lstat(join(root, name)).catch(() => null);
    if (stat?.isSocket()) inDatadir.push(join(root, name));
  }
  const paths = [...new Set([...inDatadir, ...configured.filter((p): p is string => p !== undefined)])];
  const results = await Promise.all(paths.map(async (path) => ((await probeSocket(path)) ? path : null)));
  return results.filter((path): path is string => path !== null).map((path) => `something accepts connections on ${path}`);
}

export interface DatadirWatch {
  /** Aborted when a re-check refuses. */
  signal: AbortSignal;
  /** Re-checks completed so far, and how many of them were complete (GUARD_COMPLETE_EVERY). */
  checks(): { total: number; complete: number };
  /** The refusal that stopped the watch, if one did. */
  refusal(): SeedwireError | null;
  /** Stops re-checking (a running check is canceled) and waits for it to end. */
  stop(): Promise<void>;
}

/**
 * Re-runs the guard every `intervalMs` while a long destructive step (a seed's receive) runs, so
 * a server started meanwhile stops the step instead of having its files overwritten. Every
 * re-check reads /proc/locks, pid files and sockets; the first and every GUARD_COMPLETE_EVERY-th
 * are the whole guard, those between skip the status command and what was seen (see there why).
 */
export function watchDatadir(deps: GuardDeps, options: GuardOptions & { intervalMs?: number }): DatadirWatch {
  const refused = new AbortController();
  const stopped = new AbortController();
  const signal = deps.signal ? AbortSignal.any([deps.signal, stopped.signal]) : stopped.signal;
  let refusal: SeedwireError | null = null;
  const checks = { total: 0, complete: 0 };
  let memo = newMemo();
  const loop = (async () => {
    for (;;) {
      try {
        await delay(options.intervalMs ?? GUARD_RECHECK_MS, undefined, { signal });
        const complete = checks.total % GUARD_COMPLETE_EVERY === 0;
        if (complete) memo = newMemo();
        await assertDatadirUnused({ ...deps, run: runnerFor(signal), signal }, { ...options, statusCommand: complete, memo });
        checks.total++;
        if (complete) checks.complete++;
      } catch (error) {
        if (signal.aborted) return;
        refusal = toSeedwireError(error);
        refused.abort(refusal);
        return;
      }
    }
  })();
  return {
    signal: refused.signal,
    checks: () => ({ ...checks }),
    refusal: () => refusal,
    async stop() {
      stopped.abort();
      await loop;
    },
  };
}

/**
 * Runs `work` (writing into the datadir) under watchDatadir: a server started meanwhile aborts
 * the signal `work` gets, and the guard's refusal is what is thrown, not the abort it caused.
 */
export async function runWhileGuarded<T>(deps: GuardDeps, options: GuardOptions & { intervalMs?: number }, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const watch = watchDatadir(deps, options);
  const signal = deps.signal ? AbortSignal.any([deps.signal, watch.signal]) : watch.signal;
  try {
    return await work(signal);
  } catch (error) {
    throw watch.refusal() ?? error;
  } finally {
    await watch.stop();
  }
}
