/**
 * Runs one shell command through `bash -c`, streaming stdout and stderr live.
 *
 * The child leads its own process group (`detached`), so cancel and timeout reach every
 * grandchild: SIGTERM to the group, then SIGKILL after `killGraceMs`. A command that exits while a
 * background child still holds its output pipes (a start command that launches a daemon) does
 * not hang the call: reading stops `pipeGraceMs` after bash exits.
 */
import { StringDecoder } from 'node:string_decoder';
import { execa } from 'execa';
import { LIMITS } from '../../shared/limits.js';
import { AGENT_LIMITS } from '../limits.js';

export type OutputStream = 'stdout' | 'stderr';

export interface RunOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  killGraceMs?: number;
  /** How long to keep reading output after bash exits (background children holding the pipe). */
  pipeGraceMs?: number;
  onOutput?: (stream: OutputStream, text: string) => void;
  env?: Record<string, string>;
  cwd?: string;
  /** Bytes of each stream kept for the result (the whole output is only ever streamed). */
  tailBytes?: number;
}

export interface CommandResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  isCanceled: boolean;
  durationMs: number;
  stdoutTail: string;
  stderrTail: string;
}

/** Keeps the last `max` characters of a growing text. */
class Tail {
  private text = '';
  constructor(private readonly max: number) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  value(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text;
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}

export async function runCommand(command: string, options: RunOptions = {}): Promise<CommandResult> {
  const started = performance.now();
  const killGraceMs = options.killGraceMs ?? LIMITS.killGraceMs;
  const tails = { stdout: new Tail(options.tailBytes ?? LIMITS.outputTailBytes), stderr: new Tail(options.tailBytes ?? LIMITS.outputTailBytes) };
  let timedOut = false;
  let isCanceled = false;

  if (options.signal?.aborted) {
    return { command, exitCode: null, signal: null, timedOut, isCanceled: true, durationMs: 0, stdoutTail: '', stderrTail: '' };
  }

  const child = execa('bash', ['-c', command], {
    detached: true,
    buffer: false,
    stdin: 'ignore',
    reject: false,
    cleanup: true,
    encoding: 'buffer',
    env: options.env,
    extendEnv: true,
    cwd: options.cwd,
  });

  let killTimer: NodeJS.Timeout | undefined;
  const stop = (why: 'timeout' | 'cancel'): void => {
    if (timedOut || isCanceled) return; // the first reason for stopping wins
    if (why === 'timeout') timedOut = true;
    else isCanceled = true;
    killGroup(child.pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), killGraceMs);
    killTimer.unref();
  };
  const onAbort = (): void => stop('cancel');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const timeoutTimer = options.timeoutMs ? setTimeout(() => stop('timeout'), options.timeoutMs) : undefined;

  const pipes: Array<Promise<void>> = [];
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) continue;
    const decoder = new StringDecoder('utf8');
    pipes.push(
      new Promise<void>((resolve) => {
        stream.on('data', (chunk: Buffer) => {
          const text = decoder.write(chunk);
          if (text.length === 0) return;
          tails[name].push(text);
          options.onOutput?.(name, text);
        });
        const finish = (): void => {
          const rest = decoder.end();
          if (rest.length > 0) {
            tails[name].push(rest);
            options.onOutput?.(name, rest);
          }
          resolve();
        };
        stream.once('end', finish);
        stream.once('close', finish);
        stream.once('error', finish);
      }),
    );
  }

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const { code, signal } = await exited;

  // Output written just before exit is still in the pipes: drain it, but do not wait for a
  // background grandchild that inherited them.
  const allPipes = Promise.all(pipes);
  let graceTimer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    allPipes.then(() => true),
    new Promise<boolean>((resolve) => {
      graceTimer = setTimeout(() => resolve(false), options.pipeGraceMs ?? AGENT_LIMITS.execPipeGraceMs);
    }),
  ]);
  clearTimeout(graceTimer);
  if (!drained) {
    child.stdout?.destroy();
    child.stderr?.destroy();
  }
  await child.catch(() => undefined);

  clearTimeout(timeoutTimer);
  options.signal?.removeEventListener('abort', onAbort);
  if (killTimer) {
    // bash is gone; make sure the rest of its group is too before we report the stop
    if (timedOut || isCanceled) killGroup(child.pid, 'SIGKILL');
    clearTimeout(killTimer);
  }

  return {
    command,
    exitCode: code,
    signal: signal ?? null,
    timedOut,
    isCanceled,
    durationMs: Math.round(performance.now() - started),
    stdoutTail: tails.stdout.value(),
    stderrTail: tails.stderr.value(),
  };
}
