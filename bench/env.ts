/**
 * `make bench`'s knobs, read once from the environment (README, "Performance"). Pure: the
 * caller passes the environment and the core count, so test/unit/bench-targets.test.ts checks
 * the defaults, the quick preset and the refusals.
 */
import { resolve } from 'node:path';
import { DEFAULT_BYTES } from './recipe.js';
import { parseCount, parseSize } from './targets.js';

export interface BenchEnv {
  /** Dataset size, the MariaDB datadir included. */
  bytes: number;
  /** SEEDWIRE_BENCH_QUICK=1: a small dataset and fewer samples, to check the bench itself. */
  quick: boolean;
  idleAgents: number;
  ops: number;
  /**
   * Ops run before an op latency is sampled (SEEDWIRE_BENCH_WARMUP): the controller's and the
   * agent's code tiers up in V8 over the first ~2,000 ops (measured: p50 3.06 ms in the first
   * 500 `hostname`s, 1.5–1.6 ms from the 2,000th on, docs/performance.md), and a controller in
   * service is warm.
   */
  warmup: number;
  seedTimeoutMs: number;
  /** Which seeds the seed section runs: none, zstd, during (the seed beside `hostname` ops). */
  seeds: ReadonlySet<string>;
  /** Sections to run (bench/sections.ts keys); null: all. */
  sections: ReadonlySet<string> | null;
  /** `lanes` passed to every seed. */
  lanes: number;
  /** How many seeds (and `tar | nc` pipes) run at once in the parallel section. */
  parallel: number;
  /** Run the peak-RSS seed again on a dataset of twice the size. */
  double: boolean;
  /** Where datasets are cached by recipe. */
  cacheDir: string;
  /** --cpu-prof directory for the single-seed section's processes. */
  profileDir: string | null;
}

export const QUICK_BYTES = 384 * 2 ** 20;
/** The seed section's seeds; profiling one alone (SEEDWIRE_BENCH_SEEDS=none) keeps its profile clean. */
const SEED_KINDS: readonly string[] = ['none', 'zstd', 'during'];

const flag = (text: string | undefined): boolean => text !== undefined && !['', '0', 'false', 'no'].includes(text.trim().toLowerCase());

const list = (text: string | undefined): Set<string> | null =>
  text === undefined || text.trim() === '' ? null : new Set(text.split(',').map((s) => s.trim()).filter(Boolean));

export function readBenchEnv(env: NodeJS.ProcessEnv, root: string, cores: number): BenchEnv {
  const quick = flag(env['SEEDWIRE_BENCH_QUICK']);
  const bytesText = env['SEEDWIRE_BENCH_BYTES'];
  const bytes = bytesText ? parseSize(bytesText, 'SEEDWIRE_BENCH_BYTES') : quick ? QUICK_BYTES : DEFAULT_BYTES;
  const seeds = list(env['SEEDWIRE_BENCH_SEEDS']) ?? new Set(SEED_KINDS);
  for (const s of seeds) if (!SEED_KINDS.includes(s)) throw new Error(`SEEDWIRE_BENCH_SEEDS: expected some of ${SEED_KINDS.join(', ')}, got '${s}'`);
  return {
    bytes,
    quick,
    idleAgents: parseCount(env['SEEDWIRE_BENCH_IDLE'], 'SEEDWIRE_BENCH_IDLE', quick ? 100 : 500),
    ops: parseCount(env['SEEDWIRE_BENCH_OPS'], 'SEEDWIRE_BENCH_OPS', quick ? 100 : 500),
    warmup: parseCount(env['SEEDWIRE_BENCH_WARMUP'], 'SEEDWIRE_BENCH_WARMUP', quick ? 100 : 2_000),
    seedTimeoutMs: parseCount(env['SEEDWIRE_BENCH_SEED_TIMEOUT'], 'SEEDWIRE_BENCH_SEED_TIMEOUT', 300) * 1000,
    seeds,
    sections: list(env['SEEDWIRE_BENCH_SECTIONS']),
    lanes: parseCount(env['SEEDWIRE_BENCH_LANES'], 'SEEDWIRE_BENCH_LANES', Math.max(1, Math.min(4, cores))),
    parallel: parseCount(env['SEEDWIRE_BENCH_PARALLEL'], 'SEEDWIRE_BENCH_PARALLEL', 4),
    double: env['SEEDWIRE_BENCH_DOUBLE'] === undefined ? true : flag(env['SEEDWIRE_BENCH_DOUBLE']),
    cacheDir: resolve(root, env['SEEDWIRE_BENCH_CACHE'] || 'bench/.data'),
    profileDir: env['SEEDWIRE_BENCH_PROFILE'] ? resolve(env['SEEDWIRE_BENCH_PROFILE']) : null,
  };
}
