/**
 * One controller, one source and one target agent: cold seeds without compression and with
 * zstd (each against its `tar` pipeline from the baseline section), the processes' peak RSS, the
 * `hostname` op's round trip over HTTP at rest, and the same op on the source agent while a third
 * seed sends from it.
 */
import { checkSeedCopy, type Dataset } from '../dataset.js';
import { awaitSeed, MB, measureLatency, quietDisk, runSeed, startSeed, startSeedWorld, type SeedOptions, type SeedWorld } from '../harness.js';
import { pipeCpuSeconds, resetPeakRss, seedCpuSeconds } from '../procs.js';
import type { SeedRun } from '../results.js';
import type { BenchContext, BenchSection } from '../section.js';
import { atLeast, atMost, latencyStats, ratio, round, type LatencyStats } from '../targets.js';
import { tarNcAlongside } from './baseline.js';

/** Throws unless the seed succeeded and the target equals the dataset; notes the check on the run. */
export async function verifySeed(run: SeedRun, dataset: Dataset, targetDir: string): Promise<void> {
  if (run.state !== 'succeeded') throw new Error(`seed ${run.id} ${run.state}: ${run.error?.code}: ${run.error?.message}`);
  const check = await checkSeedCopy(dataset.dir, targetDir);
  run.verified = check.text;
  if (!check.ok) throw new Error(`seed ${run.id}: target differs from source: ${check.text}`);
}

function seedOptions(ctx: BenchContext, label: string, compression: SeedOptions['compression']): SeedOptions {
  return { label, compression, lanes: ctx.env.lanes, timeoutMs: ctx.env.seedTimeoutMs };
}

/** Sequential `hostname` ops on the source over HTTP while a seed runs; only those wholly inside its transfer stage count. */
async function latencyDuringSeed(ctx: BenchContext, world: SeedWorld): Promise<{ run: SeedRun; stats: LatencyStats | null; samples: number }> {
  const pair = world.pairs[0]!;
  let transferring = false;
  let done = false;
  const samples: number[] = [];
  const sample = async (): Promise<void> => {
    while (!done) {
      const during = transferring;
      const t0 = performance.now();
      const operation = await world.ctl.ops.runOp(pair.sourceId, 'hostname', {});
      const ms = performance.now() - t0;
      if (operation.state !== 'succeeded') throw new Error(`hostname op ended ${operation.state}: ${JSON.stringify(operation.error)}`);
      if (during && transferring) samples.push(ms);
    }
  };
  const options: SeedOptions = { ...seedOptions(ctx, 'during-ops', 'none'), onPoll: (s) => void (transferring = s.stage === 'transfer') };
  await quietDisk();
  const started = await startSeed(world.ctl.client, world.procs, pair, options);
  // Caught at once and rethrown after the seed, so a failing op cannot reject unobserved.
  const sampler = sample().then(
    () => null,
    (error: unknown) => error,
  );
  let run: SeedRun;
  try {
    run = await awaitSeed(world.ctl.client, world.procs, started, options);
  } finally {
    done = true;
  }
  const samplerError = await sampler;
  if (samplerError !== null) throw samplerError;
  return { run, stats: samples.length > 0 ? latencyStats(samples) : null, samples: samples.length };
}

/** Every figure of this section, measured or not (n/a), so a failed start still lists them. */
function recordFigures(ctx: BenchContext, duringNote: string | null): void {
  const r = ctx.results;
  const oneAgent = 'measured with 2 agents connected; the target is for 1,000';
  ctx.figure({ key: 'seed.ratio', what: 'cold seed, compression none / tar | nc (the faster of one just before and one just after)', value: r.seed.ratio, unit: '×', target: atLeast(0.9, 1.0) });
  ctx.figure({ key: 'seed.zstdRatio', what: 'the same with zstd / tar | zstd -1 | nc | zstd -d | tar', value: r.seed.zstdRatio, unit: '×', target: atLeast(0.9) });
  ctx.figure({ key: 'rss.controllerMiB', what: 'peak RSS during a seed: controller', value: r.rss.controllerMiB, unit: ' MiB', target: atMost(150) });
  ctx.figure({ key: 'rss.sourceAgentMiB', what: 'peak RSS during a seed: source agent', value: r.rss.sourceAgentMiB, unit: ' MiB', target: atMost(100) });
  ctx.figure({ key: 'rss.targetAgentMiB', what: 'peak RSS during a seed: target agent', value: r.rss.targetAgentMiB, unit: ' MiB', target: atMost(100) });
  ctx.figure({ key: 'latency.p50Ms', what: '`hostname` op via HTTP, p50', value: r.latency.n > 0 ? r.latency.p50Ms : null, unit: ' ms', target: atMost(2), note: oneAgent });
  ctx.figure({ key: 'latency.p99Ms', what: '`hostname` op via HTTP, p99', value: r.latency.n > 0 ? r.latency.p99Ms : null, unit: ' ms', target: atMost(10), note: oneAgent });
  ctx.figure({ key: 'latency.duringSeed.p99Ms', what: '`hostname` op p99 while a seed runs on the same agent', value: r.latency.duringSeed?.p99Ms ?? null, unit: ' ms', target: atMost(20), note: duringNote });
}

/** The seeds and latencies; returns a note on the during-seed sample when it is thin. */
async function measure(ctx: BenchContext): Promise<string | null> {
  const { results: r, dataset } = ctx;
  let duringNote: string | null = null;
  const world = await startSeedWorld('bench', [dataset.dir], ctx.env.profileDir);
  const pair = world.pairs[0]!;
  ctx.log(`controller at ${world.ctl.url} (pid ${world.ctl.proc.pid})`);
  try {
    r.rss.beforeSeed = world.currentRss();

    if (ctx.env.seeds.has('none')) {
      const alongside = async (when: string): Promise<number | null> => {
        try {
          return await tarNcAlongside(ctx, when);
        } catch (error) {
          ctx.fail(`tar|nc ${when}`, error);
          return null;
        }
      };
      const before = await alongside('just before the seed');
      try {
        const run = await runSeed(world.ctl.client, world.procs, pair, seedOptions(ctx, 'single', 'none'));
        r.seed.runs.push(run);
        const peak = world.peakRss();
        r.rss.controllerMiB = peak.controller;
        r.rss.sourceAgentMiB = peak.source;
        r.rss.targetAgentMiB = peak.target;
        await verifySeed(run, dataset, pair.targetDir);
        r.seed.seedSeconds = round(run.seedSeconds, 2);
        r.seed.transferSeconds = round(run.transferSeconds, 2);
        r.seed.seedwireMBps = run.transferSeconds ? round(dataset.bytes / MB / run.transferSeconds) : null;
        r.seed.seedwireWholeMBps = run.seedSeconds ? round(dataset.bytes / MB / run.seedSeconds) : null;
      } catch (error) {
        ctx.fail('seed (none)', error);
      }
      const after = await alongside('just after the seed');
      r.seed.pairedTarNcMBps = [before, after];
      const paired = before === null && after === null ? null : Math.max(before ?? 0, after ?? 0);
      r.seed.ratio = ratio(r.seed.seedwireMBps, paired);
      r.seed.baselineRatio = ratio(r.seed.seedwireMBps, r.seed.tarNcMBps);
      const single = r.seed.runs.find((run) => run.label === 'single' && run.compression === 'none');
      const seedCpu = single ? seedCpuSeconds(single.cpuSeconds) : null;
      const pipe = pipeCpuSeconds(r.seed.tarNcCpu);
      const sync = r.seed.tarNcSyncCpu;
      r.seed.cpuRatio = ratio(seedCpu, pipe);
      r.seed.syncCpuRatio = ratio(seedCpu, pipe !== null && sync !== null ? pipe + sync.user + sync.sys : null);
      r.seed.relayCeiling = ratio(r.seed.tarNcRelayMBps, r.seed.tarNcMBps);
      r.seed.relayRatio = ratio(r.seed.seedwireMBps, r.seed.tarNcRelayMBps);
      r.seed.syncRatio = ratio(r.seed.seedwireMBps, r.seed.tarNcSyncMBps);
    }

    // Peak RSS of the zstd seed alone, when the kernel lets us reset VmHWM.
    if (ctx.env.seeds.has('zstd')) {
      try {
        const reset = Object.values(world.procs).every((p) => resetPeakRss(p.pid));
        const run = await runSeed(world.ctl.client, world.procs, pair, seedOptions(ctx, 'single', 'zstd'));
        r.seed.runs.push(run);
        if (reset) r.rss.zstdSeed = world.peakRss();
        await verifySeed(run, dataset, pair.targetDir);
        r.seed.zstdMBps = run.transferSeconds ? round(dataset.bytes / MB / run.transferSeconds) : null;
        r.seed.zstdSeedSeconds = round(run.seedSeconds, 2);
        r.seed.zstdTransferSeconds = round(run.transferSeconds, 2);
      } catch (error) {
        ctx.fail('seed (zstd)', error);
      }
      r.seed.zstdRatio = ratio(r.seed.zstdMBps, r.seed.tarZstdNcMBps);
      const zstd = r.seed.runs.find((run) => run.label === 'single' && run.compression === 'zstd');
      r.seed.zstdCpuRatio = zstd ? ratio(seedCpuSeconds(zstd.cpuSeconds), pipeCpuSeconds(r.seed.tarZstdNcCpu)) : null;
    }

    try {
      const lat = await measureLatency(ctx.env.ops, ctx.env.warmup, async () => {
        const operation = await world.ctl.ops.runOp(pair.sourceId, 'hostname', {});
        if (operation.state !== 'succeeded') throw new Error(`hostname op ended ${operation.state}: ${JSON.stringify(operation.error)}`);
      });
      Object.assign(r.latency, lat);
    } catch (error) {
      ctx.fail('latency (HTTP)', error);
    }

    if (ctx.env.seeds.has('during')) {
      try {
        const { run, stats, samples } = await latencyDuringSeed(ctx, world);
        r.seed.runs.push(run);
        await verifySeed(run, dataset, pair.targetDir);
        r.latency.duringSeed = stats;
        if (samples < 50) duringNote = `only ${samples} ops fell inside the transfer stage: a larger dataset gives a firmer p99`;
      } catch (error) {
        ctx.fail('latency (during a seed)', error);
      }
    }
  } finally {
    await world.close();
  }
  return duringNote;
}

export const seedSection: BenchSection = {
  key: 'seed',
  title: 'controller + two agents: cold seeds (none, zstd), peak RSS, hostname op latency at rest and during a seed',
  async run(ctx) {
    let duringNote: string | null = null;
    try {
      duringNote = await measure(ctx);
    } finally {
      recordFigures(ctx, duringNote);
    }
  },
};
