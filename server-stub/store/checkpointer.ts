/**
 * SQLite's WAL checkpoints on a thread of their own. By default the connection that commits a
 * transaction past 1,000 WAL pages runs the checkpoint itself, on the controller's event loop, and
 * a checkpoint ends with an fsync of the WAL and one of the database. On a disk that is busy
 * writing something else (a seed's target on the same machine, a backup, a neighbour) each fsync
 * waits for the disk: strace found checkpoint fsyncs of up to 38 ms on the controller's main
 * thread during one seed, every API call and agent frame waiting behind them
 * (docs/performance.md, "An op during a seed: where it waits").
 *
 * Here the main connection never checkpoints (`wal_autocheckpoint = 0`); a worker thread with its
 * own connection looks at the WAL every `intervalMs` and runs `wal_checkpoint(PASSIVE)` when as
 * many frames wait as SQLite's own threshold (1,000), or when any frame waited `maxAgeMs`: the
 * same amount of checkpointing as before, on another thread (an idle controller runs none).
 * PASSIVE does not wait for readers or writers: it copies what it can and leaves the rest to the
 * next run. With synchronous = NORMAL a WAL commit is durable once a checkpoint (or a later sync)
 * covers it: now within `maxAgeMs` at most. If the worker cannot start or dies, the main
 * connection checkpoints for itself again (SQLite's default), with a warning.
 *
 * The worker's program is this file's `checkpointMain` as compiled (the spawner's way,
 * agent/exec/spawner/source.ts), so it runs from the sources, dist/ or a bundle alike.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

/** SQLite's own default, restored when the worker is gone. */
export const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;

export interface CheckpointerOptions {
  /** How often the worker looks at the WAL. @default 250 */
  intervalMs?: number;
  /** Frames waiting that start a checkpoint: SQLite's own automatic threshold. @default 1000 */
  thresholdFrames?: number;
  /** A frame waits at most this long (then a checkpoint runs however few wait). @default 10000 */
  maxAgeMs?: number;
  log?: Pick<Logger, 'warn'>;
}

/** One checkpoint's answer: WAL frames in the log and how many of them are in the database. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

export interface Checkpointer {
  /** Checkpoints the worker has run. */
  readonly runs: number;
  /** The latest checkpoint's answer. */
  readonly last: CheckpointResult | null;
  /** Whether the worker is checkpointing (false once it stopped or failed: the main connection does). */
  readonly active: boolean;
  /** Has the worker run a checkpoint now and resolves with its answer (null once the worker is gone). */
  checkpointNow(): Promise<CheckpointResult | null>;
  /** Stops the worker after one last checkpoint; the main connection checkpoints again. Idempotent. */
  stop(): Promise<void>;
  /** The worker itself (tests end it to see the fallback). */
  readonly worker: Worker;
}

interface Settings {
  module: string;
  file: string;
  intervalMs: number;
  thresholdFrames: number;
  maxAgeMs: number;
}

type WorkerMessage = { t: 'ready' } | ({ t: 'checkpoint'; id: number } & CheckpointResult) | { t: 'error'; id: number; message: string };

/** The worker's program (runs in the worker thread; `require` is the worker's). */
function checkpointMain(require: NodeJS.Require, settings: Settings): void {
  const { parentPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const fs = require('node:fs') as typeof import('node:fs');
  const little = (require('node:os') as typeof import('node:os')).endianness() === 'LE';
  const SqliteDatabase = require(settings.module) as typeof Database;
  const db = new SqliteDatabase(settings.file, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.pragma('wal_autocheckpoint = 0');
  // How many WAL frames wait to be copied, read from the wal-index (the -shm file, native byte
  // order; https://www.sqlite.org/walformat.html): mxFrame, the last valid frame, at byte 16 of
  // the first header copy, and nBackfill, the frames already copied, at byte 96. A read racing a
  // writer may see a stale count; the next poll sees the right one. null: unreadable.
  const header = Buffer.alloc(100);
  let shm: number | null = null;
  const pendingFrames = (): number | null => {
    try {
      shm ??= fs.openSync(`${settings.file}-shm`, 'r');
      if (fs.readSync(shm, header, 0, 100, 0) < 100) return null;
      const mxFrame = little ? header.readUInt32LE(16) : header.readUInt32BE(16);
      const backfilled = little ? header.readUInt32LE(96) : header.readUInt32BE(96);
      return mxFrame >= backfilled ? mxFrame - backfilled : mxFrame;
    } catch {
      return null;
    }
  };
  let lastRunAt = Date.now();
  /**
   * A timed poll: runs a checkpoint when SQLite's own threshold is reached, or when frames waited
   * maxAgeMs; with the wal-index unreadable, every maxAgeMs (a checkpoint with nothing to copy
   * syncs nothing).
   */
  const due = (): boolean => {
    const pending = pendingFrames();
    const aged = Date.now() - lastRunAt >= settings.maxAgeMs;
    if (pending === null) return aged;
    return pending >= settings.thresholdFrames || (pending > 0 && aged);
  };
  /** id 0: a timed poll; otherwise the id of the main thread's request. */
  const run = (id: number): void => {
    try {
      if (id === 0 && !due()) return;
      lastRunAt = Date.now();
      const [answer] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
      parentPort?.postMessage({ t: 'checkpoint', id, busy: answer?.busy ?? 0, log: answer?.log ?? 0, checkpointed: answer?.checkpointed ?? 0 });
    } catch (error) {
      parentPort?.postMessage({ t: 'error', id, message: error instanceof Error ? error.message : String(error) });
    }
  };
  const timer = setInterval(() => run(0), settings.intervalMs);
  parentPort?.on('message', (message: unknown) => {
    if (typeof message === 'number') return run(message);
    if (message !== 'stop') return;
    clearInterval(timer);
    run(-1);
    if (shm !== null) fs.closeSync(shm);
    db.close();
    parentPort.close();
  });
  parentPort?.postMessage({ t: 'ready' });
}

/** esbuild's keepNames helper, defined for the program's text (see agent/exec/spawner/source.ts). */
const HELPERS = 'var __name = (fn, _name) => fn;';

/**
 * Starts checkpointing `db` (a file database in WAL mode) on a worker thread. The main
 * connection's automatic checkpoints are turned off once the worker is ready.
 */
export function startCheckpointer(db: Database.Database, options: CheckpointerOptions = {}): Checkpointer {
  const settings: Settings = {
    module: createRequire(import.meta.url).resolve('better-sqlite3'),
    file: db.name,
    intervalMs: options.intervalMs ?? 250,
    thresholdFrames: options.thresholdFrames ?? DEFAULT_AUTOCHECKPOINT_PAGES,
    maxAgeMs: options.maxAgeMs ?? 10_000,
  };
  const log = options.log;
  const program = `'use strict';\n${HELPERS}\n(${checkpointMain.toString()})(require, ${JSON.stringify(settings)});\n`;
  const worker = new Worker(program, { eval: true, name: 'seedwire-checkpointer' });
  // The controller exits without waiting for it; stop() still runs the last checkpoint.
  worker.unref();
  let runs = 0;
  let last: CheckpointResult | null = null;
  let active = false;
  let stopped = false;
  let gone = false;
  let failure = '';
  let requests = 0;
  /** Whether the latest checkpoint failed: a failing streak is logged once, not at every poll. */
  let failing = false;
  const waiters = new Map<number, (result: CheckpointResult | null) => void>();
  const answer = (id: number, result: CheckpointResult | null): void => {
    const resolve = waiters.get(id);
    waiters.delete(id);
    resolve?.(result);
  };
  worker.on('message', (message: WorkerMessage) => {
    if (message.t === 'ready') {
      if (stopped || !db.open) return;
      db.pragma('wal_autocheckpoint = 0');
      active = true;
    } else if (message.t === 'checkpoint') {
      runs += 1;
      failing = false;
      last = { busy: message.busy, log: message.log, checkpointed: message.checkpointed };
      answer(message.id, last);
    } else {
      if (!failing) log?.warn({ reason: message.message }, 'a WAL checkpoint failed; the next ones retry (logged again after one succeeds)');
      failing = true;
      answer(message.id, null);
    }
  });
  worker.on('error', (error) => {
    failure = error.message;
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', (code) => {
      const wasActive = active;
      active = false;
      gone = true;
      if (!stopped) {
        if (db.open) db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
        const reason = failure || `the thread exited with code ${code}`;
        log?.warn({ reason }, wasActive ? 'the WAL checkpoint thread stopped; the main connection checkpoints again' : 'the WAL checkpoint thread did not start; the main connection checkpoints');
      }
      for (const id of [...waiters.keys()]) answer(id, null);
      resolve();
    });
  });
  let stopping: Promise<void> | null = null;
  return {
    get runs() {
      return runs;
    },
    get last() {
      return last;
    },
    get active() {
      return active;
    },
    worker,
    checkpointNow() {
      if (gone || stopped) return Promise.resolve(null);
      requests += 1;
      const id = requests;
      const result = new Promise<CheckpointResult | null>((resolve) => waiters.set(id, resolve));
      worker.postMessage(id);
      return result;
    },
    stop() {
      stopping ??= (async () => {
        stopped = true;
        if (db.open) db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
        active = false;
        worker.postMessage('stop');
        const timer = setTimeout(() => void worker.terminate(), 10_000);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}
