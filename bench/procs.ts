/**
 * Child processes and temp dirs for `make bench`: every process started here runs in its own
 * process group and is tracked, every temp dir is registered; cleanupAll() (async) and
 * cleanupAllSync() (from an 'exit' handler) stop and remove whatever is left, even on failure.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tracked {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Last lines of stdout + stderr, for diagnostics. */
  readonly tail: string[];
  /** Parsed JSON log lines of stdout (pino), last ones kept. */
  readonly records: Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  waitForRecord(pred: (r: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>>;
}

const TAIL_LINES = 200;
const live = new Set<Tracked>();
const tempDirs = new Set<string>();
/** Stops for what is not a tracked child (a MariaDB server started through its own commands). */
const stops = new Set<() => Promise<void>>();

/** Runs `hook` in cleanupAll() unless the returned function removed it first. */
export function onCleanup(hook: () => Promise<void>): () => void {
  stops.add(hook);
  return () => void stops.delete(hook);
}

export function makeTemp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTemp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export interface SpawnTrackedOptions extends SpawnOptions {
  /**
   * Write the process's stdout and stderr to this file instead of pipes the bench reads as they
   * come. For the processes whose latency is timed: on two cores, a bench woken to read and parse
   * each of their log lines takes CPU from them between the hops being timed (a service's log goes
   * to a file or journald, not to the client). The lines are read from the file when asked for
   * (tail, records) and polled while waitForRecord waits.
   */
  logTo?: string;
}

export function spawnTracked(name: string, command: string, args: string[], options: SpawnTrackedOptions = {}): Tracked {
  const { logTo, ...spawnOptions } = options;
  const logFd = logTo === undefined ? null : openSync(logTo, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: logFd === null ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd], ...spawnOptions, detached: true });
  } finally {
    if (logFd !== null) closeSync(logFd);
  }
  if (child.pid === undefined) throw new Error(`${name}: spawn ${command} failed`);
  const tail: string[] = [];
  const records: Array<Record<string, unknown>> = [];
  const waiters = new Set<{ pred: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }>();
  const lineReader = (parse: boolean): ((chunk: string) => void) => {
    let pending = '';
    return (chunk) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        tail.push(line);
        if (tail.length > TAIL_LINES) tail.shift();
        if (!parse || !line.startsWith('{')) continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        records.push(record);
        if (records.length > TAIL_LINES) records.shift();
        for (const w of [...waiters]) {
          if (w.pred(record)) {
            waiters.delete(w);
            w.resolve(record);
          }
        }
      }
    };
  };
  const onLines = (stream: NodeJS.ReadableStream | null, parse: boolean): void => {
    if (!stream) return;
    stream.setEncoding('utf8');
    stream.on('data', lineReader(parse));
  };
  // With logTo: what the file holds past `offset`, read on demand (stdout and stderr share it; JSON lines are parsed).
  let offset = 0;
  const fromFile = lineReader(true);
  const readLog = (): void => {
    if (logTo === undefined) return;
    try {
      const size = statSync(logTo).size;
      if (size <= offset) return;
      const fd = openSync(logTo, 'r');
      try {
        const buffer = Buffer.alloc(size - offset);
        const n = readSync(fd, buffer, 0, buffer.length, offset);
        offset += n;
        fromFile(buffer.subarray(0, n).toString('utf8'));
      } finally {
        closeSync(fd);
      }
    } catch {
      // removed with its directory: nothing more to read
    }
  };
  onLines(child.stdout, true);
  onLines(child.stderr, false);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const tracked: Tracked = {
    name,
    pid: child.pid,
    child,
    get tail() {
      readLog();
      return tail;
    },
    get records() {
      readLog();
      return records;
    },
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    waitForRecord(pred, timeoutMs) {
      readLog();
      const found = records.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const poll = logTo === undefined ? null : setInterval(readLog, 20);
        const settle = (): void => {
          clearTimeout(timer);
          if (poll !== null) clearInterval(poll);
        };
        const waiter = { pred, resolve: (r: Record<string, unknown>) => (settle(), resolve(r)) };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          settle();
          reject(new Error(`${name}: timed out after ${timeoutMs} ms waiting for a log line; last output:\n${tracked.tail.slice(-20).join('\n')}`));
        }, timeoutMs);
        waiters.add(waiter);
        // `exited` only ever resolves (on the child's 'exit').
        void exited.then(({ code, signal }) => {
          readLog();
          if (!waiters.has(waiter)) return;
          waiters.delete(waiter);
          settle();
          reject(new Error(`${name} exited (code ${code}, signal ${signal}) before the expected log line; last output:\n${tracked.tail.slice(-20).join('\n')}`));
        });
      });
    },
  };
  live.add(tracked);
  void exited.then(() => live.delete(tracked)); // only ever resolves
  return tracked;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM to the process group, SIGKILL after graceMs; resolves when the leader has exited. */
export async function stopTracked(t: Tracked, graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (t.alive()) killGroup(t.pid, 'SIGTERM');
  const timer = setTimeout(() => killGroup(t.pid, 'SIGKILL'), graceMs);
  const result = await t.exited;
  clearTimeout(timer);
  killGroup(t.pid, 'SIGKILL'); // leftovers of the group (commands the process started)
  live.delete(t);
  return result;
}

/** Other resources a bench phase made (network namespaces): an async undo, and a synchronous last resort. */
export interface CleanupHook {
  run(): Promise<void>;
  runSync(): void;
}
const hooks = new Set<CleanupHook>();

/** Registers a hook that cleanupAll() and cleanupAllSync() run after stopping the processes; returns its removal. */
export function registerCleanup(hook: CleanupHook): () => void {
  hooks.add(hook);
  return () => hooks.delete(hook);
}

export async function cleanupAll(): Promise<void> {
  await Promise.allSettled([...stops].map((stop) => stop()));
  stops.clear();
  await Promise.allSettled([...live].map((t) => stopTracked(t, 5_000)));
  await Promise.allSettled([...hooks].map((h) => h.run()));
  hooks.clear();
  for (const dir of [...tempDirs]) removeTemp(dir);
}

/** Last resort from process.on('exit'): synchronous only. */
export function cleanupAllSync(): void {
  for (const t of live) killGroup(t.pid, 'SIGKILL');
  live.clear();
  for (const hook of hooks) {
    try {
      hook.runSync();
    } catch {
      // best effort
    }
  }
  hooks.clear();
  for (const dir of [...tempDirs]) {
    try {
      removeTemp(dir);
    } catch {
      // best effort
    }
  }
}

// ---- /proc ------------------------------------------------------------------------------------

/** A `Vm*` field of /proc/PID/status in KiB, or null when unreadable. */
export function procStatusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0, needs write access to clear_refs). */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU seconds in user and kernel mode. */
export interface CpuTimes {
  user: number;
  sys: number;
}

export function addTimes(a: CpuTimes | null, b: CpuTimes | null): CpuTimes | null {
  return a === null || b === null ? null : { user: a.user + b.user, sys: a.sys + b.sys };
}

/** User and system CPU seconds of the process itself (not its children), apart. */
export function cpuTimes(pid: number): CpuTimes | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return { user: Number(fields[11]) / TICKS_PER_SECOND, sys: Number(fields[12]) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

/** User + system CPU seconds of the process itself (not its children). */
export function cpuSeconds(pid: number): number | null {
  const t = cpuTimes(pid);
  return t === null ? null : t.user + t.sys;
}

/** The CPU of a pipeline's two ends (each end: its shell's children, from `times`). */
export interface PipeCpu {
  sender: CpuTimes | null;
  receiver: CpuTimes | null;
}

/** Both ends' CPU seconds summed over `runs` (null if any end did not report). */
export function sumPipeCpu(runs: ReadonlyArray<PipeCpu>): PipeCpu | null {
  if (runs.length === 0) return null;
  const zero: CpuTimes = { user: 0, sys: 0 };
  return {
    sender: runs.reduce<CpuTimes | null>((sum, r) => addTimes(sum, r.sender), zero),
    receiver: runs.reduce<CpuTimes | null>((sum, r) => addTimes(sum, r.receiver), zero),
  };
}

/** All CPU seconds of a pipeline (both ends, user + system), or null. */
export function pipeCpuSeconds(cpu: PipeCpu | null): number | null {
  const total = cpu ? addTimes(cpu.sender, cpu.receiver) : null;
  return total === null ? null : total.user + total.sys;
}

/** All CPU seconds of the processes a seed ran on (controller and agents), or null if one is unknown. */
export function seedCpuSeconds(cpuSeconds: Record<string, number | null>): number | null {
  const values = Object.values(cpuSeconds);
  return values.length === 0 || values.some((v) => v === null) ? null : values.reduce<number>((a, v) => a + v!, 0);
}

/**
 * A bash script that runs `pipeline` (failing if any part fails) and then prints bash's `times`:
 * the shell's own user/system time, then that of every child it waited for (each process of the
 * pipeline: tar, nc, zstd). childTimesFromTail() reads the second line back.
 */
export function timedPipeline(pipeline: string): string {
  return `set -o pipefail; ${pipeline}; rc=$?; times; exit $rc`;
}

const TIMES_LINE = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/;

/** The children's line of `times` (the last line of that shape in the output), or null. */
export function childTimesFromTail(tail: readonly string[]): CpuTimes | null {
  for (let i = tail.length - 1; i >= 0; i -= 1) {
    const match = TIMES_LINE.exec(tail[i]!.trim());
    if (match) return { user: Number(match[1]) * 60 + Number(match[2]), sys: Number(match[3]) * 60 + Number(match[4]) };
  }
  return null;
}

/**
 * CPU time the hypervisor took from this machine's virtual CPUs (all of them, seconds since boot;
 * the `steal` column of /proc/stat), or null where the kernel does not report it. Time stolen
 * during a timed copy slows it without showing in any process's CPU.
 */
export function stealSeconds(): number | null {
  return procStatCpuSeconds(8);
}

/** CPU time every core of this machine spent idle (seconds since boot; /proc/stat's `idle`). */
export function machineIdleSeconds(): number | null {
  return procStatCpuSeconds(4);
}

/** One column of /proc/stat's `cpu` line, in seconds (1 user, 2 nice, 3 system, 4 idle, … 8 steal). */
function procStatCpuSeconds(column: number): number | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    const value = Number(fields[column]);
    return fields[0] === 'cpu' && Number.isFinite(value) ? value / TICKS_PER_SECOND : null;
  } catch {
    return null;
  }
}

/** The pids of `parent` and of every process whose parent it is (PostgreSQL's backends). */
export function withChildren(parent: number): number[] {
  const pids = [parent];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The first process whose command line (arguments joined by spaces) `match` accepts. */
export function findPid(match: (cmdline: string) => boolean): number | null {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (match(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' '))) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

/** CPU milliseconds (user + system) of a group of processes; those gone count 0. */
export function groupCpuMs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + (cpuSeconds(pid) ?? 0) * 1000, 0);
}

/** Soft and hard open-file limits of a process. */
export function nofileLimits(pid: number | 'self'): { soft: number; hard: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    if (!match) return null;
    const n = (s: string): number => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: n(match[1]!), hard: n(match[2]!) };
  } catch {
    return null;
  }
}
