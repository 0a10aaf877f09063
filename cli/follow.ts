/**
 * Following a seed until it ends: a live progress bar on a terminal (cli-progress), plain
 * periodic lines otherwise. Ctrl-C asks whether to abort the seed or only stop watching (without
 * a terminal to ask on, it stops watching). A controller that goes away for a while (a restart)
 * is waited for: seeds resume by themselves, and so does the follower.
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import { ApiError, type ApiClient, type SeedView } from '../client/api.js';
import { formatBytes, formatDuration, formatRate, percent } from './format.js';
import type { Io } from './io.js';
import { progressLine } from './report.js';

export interface FollowOptions {
  /** How often the seed is asked for. @default 500 */
  pollMs?: number;
  /** Plain mode: at most one line per this interval unless the stage or state changes. @default 2000 */
  lineEveryMs?: number;
}

export type FollowOutcome = { kind: 'ended'; seed: SeedView } | { kind: 'stopped'; seed: SeedView | null };

interface Renderer {
  update(seed: SeedView): void;
  note(text: string): void;
  /** Clears the way for a prompt or the final report. */
  stop(): void;
}

function isEnded(seed: SeedView): boolean {
  return seed.state !== 'pending' && seed.state !== 'running';
}

/** The bar on a terminal: bytes done/total, rate, ETA, stage, attempts. */
function createBarRenderer(io: Io): Renderer {
  const bar = new cliProgress.SingleBar(
    {
      stream: io.stdout,
      format: '{bar} {pct} {done}/{total_} {rate} ETA {eta_} · {stage} · attempt {attempts}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      fps: 5,
      // The ETA comes from the controller (it knows the rate across resumes), not cli-progress's estimate.
      etaBuffer: 1,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const payload = (seed: SeedView): Record<string, string | number> => ({
    pct: percent(seed.bytesDone, seed.bytesTotal).padStart(4),
    done: formatBytes(seed.bytesDone),
    total_: formatBytes(seed.bytesTotal),
    rate: formatRate(seed.bytesPerSec),
    eta_: formatDuration(seed.etaSeconds),
    stage: seed.stage ?? seed.state,
    attempts: Math.max(1, seed.attempts),
  });
  return {
    update(seed) {
      const total = Math.max(1, seed.bytesTotal ?? 1);
      if (!started) {
        bar.start(total, seed.bytesDone, payload(seed));
        started = true;
        return;
      }
      bar.setTotal(total);
      bar.update(seed.bytesDone, payload(seed));
    },
    note(text) {
      if (started) {
        bar.stop();
        started = false;
      }
      io.stdout.write(`${text}\n`);
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}

/** Lines for logs and pipes: on every stage or state change, and at most every `everyMs` otherwise. */
function createLineRenderer(io: Io, everyMs: number): Renderer {
  let last = '';
  let lastKey = '';
  let lastAt = 0;
  return {
    update(seed) {
      const line = progressLine(seed);
      const key = `${seed.state}/${seed.stage}/${seed.attempts}`;
      const now = io.now();
      if (line === last || (key === lastKey && now - lastAt < everyMs)) return;
      io.stdout.write(`${line}\n`);
      last = line;
      lastKey = key;
      lastAt = now;
    },
    note(text) {
      io.stdout.write(`${text}\n`);
    },
    stop() {},
  };
}

/** Asks on the terminal; an empty answer or a second Ctrl-C means "stop watching". */
async function askWhatToDo(io: Io, seedId: string): Promise<'abort' | 'stop' | 'continue'> {
  // On stderr, so that stdout stays what the command prints (JSON with --json).
  const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: true });
  try {
    const answer = await new Promise<string | null>((resolve) => {
      rl.once('SIGINT', () => resolve(null));
      rl.once('close', () => resolve(null));
      rl.question(`\nSeed ${seedId} is still running. [a]bort it, [s]top watching (it carries on), or [c]ontinue watching? [s] `, resolve);
    });
    const choice = (answer ?? '').trim().toLowerCase();
    if (choice.startsWith('a')) return 'abort';
    if (choice.startsWith('c')) return 'continue';
    return 'stop';
  } finally {
    rl.close();
  }
}

export async function followSeed(client: ApiClient, io: Io, seedId: string, quiet: boolean, options: FollowOptions = {}): Promise<FollowOutcome> {
  const pollMs = options.pollMs ?? 500;
  const tty = io.stdout.isTTY === true;
  const renderer: Renderer = quiet ? { update() {}, note() {}, stop() {} } : tty ? createBarRenderer(io) : createLineRenderer(io, options.lineEveryMs ?? 2000);
  let wake = new AbortController();
  let interrupted = false;
  const offInterrupt = io.onInterrupt(() => {
    interrupted = true;
    wake.abort();
  });
  let seed: SeedView | null = null;
  let unreachableSince: number | null = null;
  let aborting = false;
  try {
    for (;;) {
      if (interrupted) {
        interrupted = false;
        renderer.stop();
        const canAsk = io.stdin.isTTY === true && io.stderr.isTTY === true && !aborting;
        const choice = canAsk ? await askWhatToDo(io, seedId) : 'stop';
        if (choice === 'stop') {
          io.stderr.write(`stopped watching seed ${seedId}; it carries on (seedwire seed show ${seedId})\n`);
          return { kind: 'stopped', seed };
        }
        if (choice === 'abort') {
          aborting = true;
          renderer.note(`aborting seed ${seedId}...`);
          try {
            seed = await client.abortSeed(seedId);
          } catch (error) {
            // 409: it ended (or is ending) meanwhile; the next poll shows how.
            if (!(error instanceof ApiError && error.httpStatus === 409)) throw error;
            renderer.note(`cannot abort: ${error.message}`);
          }
        }
      }
      try {
        seed = await client.seed(seedId);
        if (unreachableSince !== null) renderer.note('controller reachable again');
        unreachableSince = null;
      } catch (error) {
        // A controller restart: the seed resumes on its own; keep asking.
        if (!(error instanceof ApiError && error.unreachable)) throw error;
        if (unreachableSince === null) renderer.note(`controller unreachable (${error.message}); still trying, Ctrl-C to stop watching`);
        unreachableSince ??= io.now();
      }
      if (seed && isEnded(seed)) {
        renderer.update(seed);
        renderer.stop();
        return { kind: 'ended', seed };
      }
      if (seed && unreachableSince === null) renderer.update(seed);
      wake = new AbortController();
      if (interrupted) continue;
      await sleep(pollMs, undefined, { signal: wake.signal }).catch(() => undefined);
    }
  } finally {
    offInterrupt();
    renderer.stop();
  }
}
