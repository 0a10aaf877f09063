/**
 * A long-running tool as a child process with its own process group (mariabackup, mbstream):
 * stdio piped, stderr lines forwarded (bounded) and tailed, and a stop() that sends SIGTERM to
 * the whole group and SIGKILL after a grace period, like agent/exec/run.ts does for commands.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import { SeedwireError } from '../../shared/errors.js';
import { commandFailed } from '../exec/failure.js';
import { commandEnv } from '../exec/env.js';

export interface ToolChildOptions {
  file: string;
  args: string[];
  cwd?: string;
  /** 'pipe' to write to the child's stdin. */
  stdin: 'pipe' | 'ignore';
  killGraceMs: number;
  /** Each complete stderr line (without its newline). */
  onStderrLine?: (line: string) => void;
  /** Forwarded stderr text, at most `maxForwardBytes` of it (then one notice). */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  maxForwardBytes?: number;
}

export interface ToolExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The child could not be started (ENOENT...). */
  spawnError: Error | null;
}

export interface ToolChild {
  readonly pid: number | undefined;
  readonly stdout: Readable;
  readonly stdin: Writable | null;
  /** Resolves when the process has exited and its stderr is drained. */
  readonly exited: Promise<ToolExit>;
  /** The last bytes of stderr. */
  stderrTail(): string;
  /** SIGTERM to the group, SIGKILL after the grace period; resolves once it exited. */
  stop(): Promise<ToolExit>;
}

const TAIL_CHARS = 8 * 1024;
const DEFAULT_FORWARD_BYTES = 4 * 1024 * 1024;

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

export function startToolChild(options: ToolChildOptions): ToolChild {
  const child = execa(options.file, options.args, {
    detached: true,
    buffer: false,
    stdin: options.stdin,
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
    cleanup: true,
    encoding: 'buffer',
    // Backup tools and extractors get the agent's environment without its secrets, as commands do.
    env: commandEnv(process.env),
    extendEnv: false,
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  let tail = '';
  let forwarded = 0;
  const maxForward = options.maxForwardBytes ?? DEFAULT_FORWARD_BYTES;
  let partial = '';
  const decoder = new StringDecoder('utf8');
  const onText = (text: string): void => {
    tail = (tail + text).slice(-TAIL_CHARS);
    if (forwarded < maxForward) {
      const part = text.slice(0, maxForward - forwarded);
      forwarded += part.length;
      options.onOutput?.('stderr', part);
      if (forwarded >= maxForward) options.onOutput?.('stderr', `\n[seedwire: further output of ${options.file} not shown]\n`);
    }
    if (options.onStderrLine) {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) options.onStderrLine(line);
    }
  };
  const stderrDone = new Promise<void>((resolve) => {
    const stderr = child.stderr;
    if (!stderr) {
      resolve();
      return;
    }
    stderr.on('data', (chunk: Buffer) => onText(decoder.write(chunk)));
    const finish = (): void => {
      const rest = decoder.end();
      if (rest) onText(rest);
      if (partial && options.onStderrLine) options.onStderrLine(partial);
      partial = '';
      resolve();
    };
    stderr.once('end', finish);
    stderr.once('close', finish);
    stderr.once('error', finish);
  });
  let spawnError: Error | null = null;
  const exitedRaw = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      spawnError = error;
      resolve({ code: null, signal: null });
    });
  });
  // execa's own promise settles once the child and its streams are done; never unhandled.
  child.catch(() => undefined);
  // stdin errors (EPIPE when the child exits early) surface through the exit code instead.
  child.stdin?.on('error', () => undefined);
  const exited = (async (): Promise<ToolExit> => {
    const { code, signal } = await exitedRaw;
    // The tool's last lines matter (the error, the binlog position): drain them, bounded.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stderrDone, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
    return { code, signal, spawnError };
  })();

  let stopping: Promise<ToolExit> | null = null;
  return {
    pid: child.pid,
    stdout: child.stdout as Readable,
    stdin: child.stdin ?? null,
    exited,
    stderrTail: () => tail,
    stop() {
      stopping ??= (async () => {
        killGroup(child.pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), options.killGraceMs);
        timer.unref();
        const result = await exited;
        clearTimeout(timer);
        killGroup(child.pid, 'SIGKILL'); // anything of its group still around
        return result;
      })();
      return stopping;
    },
  };
}

/** SEEDWIRE_COMMAND_FAILED for a tool that did not exit 0, with its stderr tail. */
export function toolFailed(what: string, exit: ToolExit, stderrTail: string): SeedwireError {
  if (exit.spawnError) {
    const missing = (exit.spawnError as NodeJS.ErrnoException).code === 'ENOENT';
    return new SeedwireError('SEEDWIRE_COMMAND_FAILED', `${what} could not start${missing ? ' (not installed or not on PATH)' : ''}: ${exit.spawnError.message}`);
  }
  return commandFailed(what, { exitCode: exit.code, signal: exit.signal, stderrTail });
}
