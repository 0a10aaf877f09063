/**
 * `make bench` (README "Performance", docs/performance.md): one run on one dataset, every
 * figure of the wire-speed targets beside its target with PASS/FAIL, printed and written to
 * bench/results/latest.json with the machine's description.
 *
 * The dataset is a real MariaDB datadir plus 2,000 small and four large incompressible tables
 * (bench/recipe.ts), cached under bench/.data by recipe. The sections (bench/sections.ts) run in
 * order: `tar` pipeline baselines; a controller and two real agents (seeds without compression
 * and with zstd, peak RSS, `hostname` op latency at rest and during a seed); several seeds at
 * once against as many `tar | nc`; the peak-RSS seed on a doubled dataset; raw protocol calls;
 * idle agents on one controller.
 *
 * Env (bench/env.ts): SEEDWIRE_BENCH_QUICK=1 (384 MiB dataset, fewer samples),
 * SEEDWIRE_BENCH_BYTES (dataset size, default 1.5G; accepts 512M, 2G...), SEEDWIRE_BENCH_LANES
 * (`lanes` of every seed, default min(4, cores)), SEEDWIRE_BENCH_PARALLEL (seeds at once, default
 * 4), SEEDWIRE_BENCH_DOUBLE=0 (skip the doubled-dataset RSS run), SEEDWIRE_BENCH_SECTIONS (comma
 * list of section keys), SEEDWIRE_BENCH_IDLE (idle agents, default 500), SEEDWIRE_BENCH_OPS
 * (latency samples, default 500), SEEDWIRE_BENCH_WARMUP (ops before latency is sampled, default
 * 2,000: a controller in service is warm), SEEDWIRE_BENCH_SEED_TIMEOUT (seconds per seed, default 300),
 * SEEDWIRE_BENCH_SEEDS (the seed section's seeds: default none,zstd,during), SEEDWIRE_BENCH_CACHE (dataset cache
 * dir), SEEDWIRE_BENCH_PROFILE=DIR (the seed section's processes with --cpu-prof into DIR;
 * summarise with bench/profile-summary.ts), SEEDWIRE_BENCH_PROBE=DIR (every controller and agent
 * loads bench/probe.mjs: memory by mapping, collections, event-loop delay, as JSON lines in DIR;
 * summarise with bench/probe-summary.ts), SEEDWIRE_BENCH_DATA_CONNECTIONS=0 (seed bytes on the agents'
 * control links, as before data connections). Needs a built dist/ (the Makefile target builds it).
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ensureDataset, mariadbVersion, type Dataset } from './dataset.js';
import { readBenchEnv } from './env.js';
import { reportedToHostKiB } from './host-memory.js';
import { log, MiB, quietDisk, requireBuilt, ROOT, runShell, shq } from './harness.js';
import { cleanupAll, cleanupAllSync } from './procs.js';
import { makeRecipe } from './recipe.js';
import { detailsTable, targetsTable } from './report.js';
import { makeResults } from './results.js';
import type { BenchContext } from './section.js';
import { SECTIONS } from './sections.js';
import { makeFigure, round } from './targets.js';

const env = readBenchEnv(process.env, ROOT, cpus().length);
const results = makeResults(env);

function fail(phase: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  results.errors.push(`${phase}: ${message}`);
  log(`${phase} FAILED: ${message}`);
}

async function main(): Promise<number> {
  requireBuilt();
  const started = performance.now();
  const version = mariadbVersion();
  const datasetOfSize = async (bytes: number): Promise<Dataset> => {
    const dataset = await ensureDataset(env.cacheDir, makeRecipe(bytes, version), log);
    log(`dataset ${dataset.key}: ${(dataset.bytes / MiB).toFixed(0)} MiB in ${dataset.files} files${dataset.generated ? ` (built in ${dataset.generateSeconds.toFixed(1)} s)` : ' (cached)'}`);
    // Same starting point for every copy: the source tree in the page cache.
    await runShell('warm', `tar -c -C ${shq(dataset.dir)} . | cat >/dev/null`, 600_000);
    return dataset;
  };
  const selected = SECTIONS.filter((section) => env.sections === null || env.sections.has(section.key));
  // A run of sections that need no dataset (`make bench-cluster`) builds none.
  let dataset: Dataset | null = null;
  if (selected.some((section) => section.needsDataset !== false)) {
    dataset = await datasetOfSize(env.bytes);
    results.dataset = { ...results.dataset, bytes: dataset.bytes, files: dataset.files, key: dataset.key, datadirBytes: dataset.datadirBytes, generatedSeconds: dataset.generated ? round(dataset.generateSeconds, 1) : null };
  }

  for (const section of selected) {
    const ctx: BenchContext = {
      env,
      results,
      get dataset(): Dataset {
        if (dataset === null) throw new Error(`section ${section.key}: no dataset was built for this run`);
        return dataset;
      },
      datasetOfSize,
      figure: (input) => {
        const figure = makeFigure({ ...input, section: section.key });
        results.targets.push(figure);
        return figure;
      },
      fail,
      log,
    };
    log(`${section.key}: ${section.title}`);
    // What the bench process itself carries into the section (it shares the cores with what it times).
    const own = process.memoryUsage();
    log(`${section.key}: the bench process: RSS ${(own.rss / MiB).toFixed(1)} MiB, heap ${(own.heapUsed / MiB).toFixed(1)} of ${(own.heapTotal / MiB).toFixed(1)} MiB, ${process.getActiveResourcesInfo().length} active handles`);
    // What the section before left to write back is not this section's work.
    await quietDisk();
    const t0 = performance.now();
    const reportedBefore = reportedToHostKiB();
    try {
      await section.run(ctx);
    } catch (error) {
      fail(section.key, error);
    }
    results.timings[section.key] = Math.round((performance.now() - t0) / 1000);
    const reportedAfter = reportedToHostKiB();
    if (reportedBefore !== null && reportedAfter !== null) {
      const mib = Math.round((reportedAfter - reportedBefore) / 1024);
      results.machine.reportedToHostMiB[section.key] = mib;
      log(`${section.key}: ${mib} MiB of freed memory went back to the hypervisor during the section (free page reporting; touched again, each page costs a host fault)`);
    }
  }

  results.timings['total'] = Math.round((performance.now() - started) / 1000);
  results.machine.loadAvgEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  const out = join(ROOT, 'bench/results/latest.json');
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nseedwire bench — ${results.at}\n\n${targetsTable(results.targets)}\n\n${detailsTable(results)}\n\nwritten ${out} (${statSync(out).size} bytes) in ${results.timings['total']} s\n`);
  return results.errors.length > 0 ? 1 : 0;
}

process.on('exit', cleanupAllSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanupAll()
      .catch((error: unknown) => log(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => process.exit(130));
  });
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    fail('bench', error);
    await cleanupAll();
    process.exit(1);
  });
