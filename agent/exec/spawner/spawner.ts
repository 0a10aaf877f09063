/**
 * The agent's handle on its spawner process (child.ts): starts it, sends it commands, routes
 * their output and ends back to the callers, and restarts it when it dies. While it is not
 * running (starting, or restarting after a crash) `launch` returns null and the caller spawns
 * directly, so commands never wait for it; the first command starts it (`start()` starts it
 * ahead). A command in flight when the spawner dies fails with
 * SEEDWIRE_COMMAND_FAILED and its process group is killed: its output can no longer be read.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { SeedwireError } from '../../../shared/errors.js';
import { encodeFrame, FRAME_TYPES, FrameDecoder, parseDone, type DoneMessage } from './wire.js';
import { spawnerProgram } from './source.js';
import type { SpawnerSettings } from './child.js';

export type OutputStream = 'stdout' | 'stderr';

export interface LaunchRequest {
  command: string;
  env?: Record<string, string>;
  cwd?: string;
  pipeGraceMs: number;
  onOutput(stream: OutputStream, chunk: Buffer): void;
}

/** One command started somewhere (the spawner or a direct spawn), as runCommand drives it. */
export interface Launched {
  /** bash's pid (its process group's id) once known. */
  pid(): number | undefined;
  /** Called once with the pid (at once if it is already known). */
  onPid(listener: (pid: number) => void): void;
  /** bash exited and its output was read (or given up after the pipe grace). */
  finished: Promise<{ code: number | null; signal: string | null }>;
}

export interface SpawnerOptions {
  log: Logger;
  /** The environment commands get (already without the agent's secrets). */
  env: NodeJS.ProcessEnv;
  /** @default 2 bash processes kept waiting for a command. */
  warm?: number;
  /** @default 4096: longer commands start a fresh bash (a waiting one reads its command byte by byte). */
  warmMaxCommandBytes?: number;
  /** @default 100 ms before the first restart after a crash, doubling up to restartCapMs. */
  restartBaseMs?: number;
  /** @default 10_000 ms. */
  restartCapMs?: number;
}

/** The spawner's Node: a small heap; its own flags, never the agent's (no --cpu-prof, no loaders). */
const NODE_FLAGS = ['--max-old-space-size=32', '--max-semi-space-size=1'];
/** A spawner that stayed up this long counts as healthy: the next crash restarts it quickly again. */
const HEALTHY_MS = 30_000;
const STDERR_KEPT = 2048;

interface InFlight {
  pid: number | undefined;
  listeners: Array<(pid: number) => void>;
  request: LaunchRequest;
  resolve(end: { code: number | null; signal: string | null }): void;
  reject(error: SeedwireError): void;
}

export class Spawner {
  private child: ChildProcess | undefined;
  private channel: Duplex | undefined;
  private isReady = false;
  private stopped = false;
  private nextId = 1;
  private failures = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  private readonly readyWaiters = new Set<() => void>();
  private exitedChild: Promise<void> = Promise.resolve();
  private readonly settings: SpawnerSettings;

  constructor(private readonly options: SpawnerOptions) {
    this.settings = { warm: options.warm ?? 2, warmMaxCommandBytes: options.warmMaxCommandBytes ?? 4096, refillIdleMs: 20 };
  }

  /** The spawner process's pid while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** Resolves when a spawner is ready (for start-up and tests; commands never wait for it). */
  whenReady(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.add(resolve));
  }

  start(): void {
    if (this.stopped || this.child) return;
    const { log } = this.options;
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [...NODE_FLAGS, '-', 'seedwire-spawner'], {
        stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
        env: this.options.env,
      });
    } catch (error) {
      log.warn({ err: error }, 'command spawner did not start; commands are spawned directly');
      this.scheduleRestart();
      return;
    }
    this.child = child;
    this.startedAt = Date.now();
    const channel = child.stdio[3] as Duplex | null;
    if (!channel || !child.stdin) {
      child.kill('SIGKILL');
      return;
    }
    this.channel = channel;
    child.stdin.on('error', () => undefined);
    child.stdin.end(spawnerProgram(this.settings));
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      stderr = (stderr + text).slice(-STDERR_KEPT);
    });
    const decoder = new FrameDecoder();
    channel.on('data', (chunk: Buffer) => {
      try {
        for (const frame of decoder.push(chunk)) this.handleFrame(frame.type, frame.id, frame.payload);
      } catch (error) {
        log.error({ err: error }, 'command spawner sent an unreadable frame; restarting it');
        child.kill('SIGKILL');
      }
    });
    channel.on('error', () => undefined);
    child.on('error', (error) => log.warn({ err: error }, 'command spawner process error'));
    this.exitedChild = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.onExit(child, code, signal, stderr.trim());
        resolve();
      });
    });
  }

  /**
   * Starts a command in the spawner, or returns null when none is ready (the caller spawns it
   * itself).
   */
  launch(request: LaunchRequest): Launched | null {
    if (!this.isReady || !this.channel) {
      // Started on first use: an agent that runs no commands never pays for the process.
      if (!this.child && this.restartTimer === undefined) this.start();
      return null;
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    let entry: InFlight | undefined;
    const finished = new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
      entry = { pid: undefined, listeners: [], request, resolve, reject };
    });
    if (!entry) throw new Error('unreachable: promise executor runs synchronously');
    const flight = entry;
    this.inFlight.set(id, flight);
    const body = { command: request.command, pipeGraceMs: request.pipeGraceMs, ...(request.env === undefined ? {} : { env: request.env }), ...(request.cwd === undefined ? {} : { cwd: request.cwd }) };
    this.channel.write(encodeFrame(FRAME_TYPES.run, id, Buffer.from(JSON.stringify(body), 'utf8')));
    return {
      pid: () => flight.pid,
      onPid: (listener) => {
        if (flight.pid !== undefined) listener(flight.pid);
        else flight.listeners.push(listener);
      },
      finished,
    };
  }

  /** Ends the spawner (commands in flight have been drained by the dispatcher by now). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.isReady = false;
    const child = this.child;
    if (!child) return;
    this.channel?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    await this.exitedChild;
    clearTimeout(timer);
  }

  private handleFrame(type: number, id: number, payload: Buffer): void {
    if (type === FRAME_TYPES.ready) {
      this.isReady = true;
      this.options.log.info({ pid: this.child?.pid, warm: this.settings.warm }, 'command spawner ready');
      for (const resolve of this.readyWaiters) resolve();
      this.readyWaiters.clear();
      return;
    }
    const flight = this.inFlight.get(id);
    if (!flight) return;
    switch (type) {
      case FRAME_TYPES.started: {
        const pid = Number(payload.toString('utf8'));
        if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error(`spawner started frame: pid '${payload.toString('utf8')}'`);
        flight.pid = pid;
        for (const listener of flight.listeners.splice(0)) listener(pid);
        return;
      }
      case FRAME_TYPES.stdout:
        flight.request.onOutput('stdout', payload);
        return;
      case FRAME_TYPES.stderr:
        flight.request.onOutput('stderr', payload);
        return;
      case FRAME_TYPES.done: {
        const done: DoneMessage = parseDone(payload);
        this.inFlight.delete(id);
        if (done.error !== undefined) this.options.log.debug({ command: flight.request.command, error: done.error }, 'command did not start');
        flight.resolve({ code: done.code, signal: done.signal });
        return;
      }
      default:
        throw new Error(`spawner frame type ${type} is unknown`);
    }
  }

  private onExit(child: ChildProcess, code: number | null, signal: string | null, stderr: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.channel = undefined;
    this.isReady = false;
    const how = signal ? `was killed by ${signal}` : `exited ${code}`;
    if (!this.stopped || this.inFlight.size > 0) {
      this.options.log.warn({ pid: child.pid, code, signal, inFlight: this.inFlight.size, stderr: stderr || undefined }, 'command spawner ended; commands are spawned directly until it is back');
    }
    for (const flight of this.inFlight.values()) {
      // Nothing reads its output any more: end it rather than leave it running unseen.
      if (flight.pid !== undefined) killGroup(flight.pid, 'SIGKILL');
      flight.reject(
        new SeedwireError('SEEDWIRE_COMMAND_FAILED', `the agent's command spawner (pid ${child.pid}) ${how} while the command ran; its process group was killed and its outcome is unknown`, {
          details: { exitCode: null },
        }),
      );
    }
    this.inFlight.clear();
    if (!this.stopped) this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopped) return;
    if (Date.now() - this.startedAt > HEALTHY_MS) this.failures = 0;
    const base = this.options.restartBaseMs ?? 100;
    const delay = Math.min(this.options.restartCapMs ?? 10_000, base * 2 ** this.failures);
    this.failures += 1;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.start();
    }, delay);
    this.restartTimer.unref();
  }
}

export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is already gone
  }
}
