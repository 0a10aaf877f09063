/**
 * Runs one shell command through `bash -c`, streaming stdout and stderr live.
 *
 * The child leads its own process group (`detached`), so cancel and timeout reach every
 * grandchild: SIGTERM to the group, then SIGKILL after `killGraceMs`. A command that exits while a
 * background child still holds its output pipes (a start command that launches a daemon) does
 * not hang the call: reading stops `pipeGraceMs` after bash exits.
 *
 * Where bash starts: through the agent's spawner (spawner/) when one is given and ready, else from
 * this process. Either way the command's environment is the agent's without its secrets (env.ts),
 * and timeouts, cancel and the kill escalation are decided here.
 */
import { StringDecoder } from 'node:string_decoder';
import { execa } from 'execa';
import { LIMITS } from '../../shared/limits.js';
import { AGENT_LIMITS } from '../limits.js';
import { commandEnv } from './env.js';
import { killGroup, type Launched, type OutputStream, type Spawner } from './spawner/spawner.js';

export type { OutputStream };

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
  /** Start the command through this spawner when it is ready (else from this process). */
  spawner?: Spawner | undefined;
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

/** Starts `bash -c` from this process (no spawner, or none ready): what every command did before the spawner. */
function launchDirect(command: string, options: RunOptions, onOutput: (stream: OutputStream, chunk: Buffer) => void): Launched {
  const child = execa('bash', ['-c', command], {
    detached: true,
    buffer: false,
    stdin: 'ignore',
    reject: false,
    cleanup: true,
    encoding: 'buffer',
    env: { ...commandEnv(process.env), ...options.env },
    extendEnv: false,
    cwd: options.cwd,
  });
  const pipes: Array<Promise<void>> = [];
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) continue;
    pipes.push(
      new Promise<void>((resolve) => {
        stream.on('data', (chunk: Buffer) => onOutput(name, chunk));
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.once('error', () => resolve());
      }),
    );
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const finished = (async (): Promise<{ code: number | null; signal: string | null }> => {
    const end = await exited;
    // Output written just before exit is still in the pipes: drain it, but do not wait for a
    // background grandchild that inherited them.
    let graceTimer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      Promise.all(pipes).then(() => true),
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
    return end;
  })();
  return {
    pid: () => child.pid,
    onPid: (listener) => {
      if (child.pid !== undefined) listener(child.pid);
    },
    finished,
  };
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

  const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  const emit = (name: OutputStream, text: string): void => {
    if (text.length === 0) return;
    tails[name].push(text);
    options.onOutput?.(name, text);
  };
  const onChunk = (name: OutputStream, chunk: Buffer): void => emit(name, decoders[name].write(chunk));
  const pipeGraceMs = options.pipeGraceMs ?? AGENT_LIMITS.execPipeGraceMs;
  const launched =
    options.spawner?.launch({ command, pipeGraceMs, onOutput: onChunk, ...(options.env === undefined ? {} : { env: options.env }), ...(options.cwd === undefined ? {} : { cwd: options.cwd }) }) ??
    launchDirect(command, { ...options, pipeGraceMs }, onChunk);

  // The latest signal asked for, sent to the group as soon as its pid is known (a spawner
  // reports it a moment after the request).
  let wanted: NodeJS.Signals | undefined;
  const signalGroup = (signal: NodeJS.Signals): void => {
    wanted = signal;
    killGroup(launched.pid(), signal);
  };
  launched.onPid((pid) => {
    if (wanted) killGroup(pid, wanted);
  });

  let killTimer: NodeJS.Timeout | undefined;
  const stop = (why: 'timeout' | 'cancel'): void => {
    if (timedOut || isCanceled) return; // the first reason for stopping wins
    if (why === 'timeout') timedOut = true;
    else isCanceled = true;
    signalGroup('SIGTERM');
    killTimer = setTimeout(() => signalGroup('SIGKILL'), killGraceMs);
    killTimer.unref();
  };
  const onAbort = (): void => stop('cancel');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const timeoutTimer = options.timeoutMs ? setTimeout(() => stop('timeout'), options.timeoutMs) : undefined;

  let code: number | null;
  let signal: string | null;
  try {
    ({ code, signal } = await launched.finished);
  } finally {
    clearTimeout(timeoutTimer);
    clearTimeout(killTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
  for (const name of ['stdout', 'stderr'] as const) emit(name, decoders[name].end());

  // bash is gone; make sure the rest of its group is too before we report the stop
  if (timedOut || isCanceled) killGroup(launched.pid(), 'SIGKILL');

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
