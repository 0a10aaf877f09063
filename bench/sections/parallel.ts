/**
 * Several seeds at once through one controller (one source/target agent pair each, every source
 * reading the same dataset) against as many `tar | nc` pipelines at once: aggregate bytes per
 * second over the span from the first start to the last end, and their ratio. The pipelines run
 * just before the seeds and again just after them, and the seeds are judged against the faster.
 */
import { join } from 'node:path';
import { compareTrees } from '../dataset.js';
import { awaitSeed, MB, quietDisk, startSeed, startSeedWorld, tarPipes, type SeedOptions } from '../harness.js';
import { cpuSeconds, makeTemp, pipeCpuSeconds, removeTemp, seedCpuSeconds, sumPipeCpu, type PipeCpu } from '../procs.js';
import type { SeedRun } from '../results.js';
import type { BenchContext, BenchSection } from '../section.js';
import { aggregateRate, atLeast, ratio, round } from '../targets.js';
import { verifySeed } from './seed.js';

interface TarAtOnce {
  aggregateMBps: number | null;
  seconds: number | null;
  cpu: PipeCpu | null;
}

/** `n` × `tar | nc` at once, each copy checked; null (and a failure recorded) when one fails. */
async function tarAtOnce(ctx: BenchContext, when: string): Promise<TarAtOnce | null> {
  const { dataset, env } = ctx;
  const n = env.parallel;
  ctx.log(`${n} × tar | nc at once, ${when}`);
  const work = makeTemp('seedwire-benchrun-par-tar-');
  try {
    const copies = Array.from({ length: n }, (_, i) => ({ source: dataset.dir, target: join(work, `dst-${i + 1}`) }));
    const intervals = await tarPipes('plain', copies, env.seedTimeoutMs);
    for (const { target } of copies) {
      const check = await compareTrees(dataset.dir, target, new Set());
      if (check.problem) throw new Error(`parallel tar|nc copy ${target} differs: ${check.problem}`);
    }
    const rate = aggregateRate(intervals.map((interval) => ({ bytes: dataset.bytes, interval })));
    const run: TarAtOnce = {
      aggregateMBps: rate === null ? null : round(rate / MB),
      seconds: round((Math.max(...intervals.map((i) => i.endMs)) - Math.min(...intervals.map((i) => i.startMs))) / 1000, 2),
      cpu: sumPipeCpu(intervals.map((interval) => interval.cpu)),
    };
    ctx.log(`  ${n} × tar | nc ${when}: ${run.aggregateMBps ?? 'n/a'} MB/s aggregate`);
    return run;
  } catch (error) {
    ctx.fail(`parallel tar|nc ${when}`, error);
    return null;
  } finally {
    removeTemp(work);
  }
}

export const parallelSection: BenchSection = {
  key: 'parallel',
  title: 'seeds at once through one controller vs as many tar | nc at once',
  async run(ctx) {
    const { results: r, dataset, env } = ctx;
    const n = env.parallel;
    const before = await tarAtOnce(ctx, 'before the seeds');
    ctx.log(`${n} seeds at once through one controller`);
    try {
      const world = await startSeedWorld('par', Array.from({ length: n }, () => dataset.dir));
      try {
        const options = (i: number): SeedOptions => ({ label: `parallel-${i + 1}`, compression: 'none', lanes: env.lanes, timeoutMs: env.seedTimeoutMs });
        // Posted together, as the pipelines start together: a seed's POST waits for its precheck.
        await quietDisk();
        // Each run's CPU figures: the controller and its own pair; all processes together for the whole.
        const pairProcs = world.pairs.map((pair) => ({ controller: world.ctl.proc, source: pair.source, target: pair.target }));
        const allCpu = (): number | null => seedCpuSeconds(Object.fromEntries(Object.entries(world.procs).map(([k, p]) => [k, cpuSeconds(p.pid)])));
        const cpuBefore = allCpu();
        const started = await Promise.all(world.pairs.map((pair, i) => startSeed(world.ctl.client, pairProcs[i]!, pair, options(i))));
        const runs: SeedRun[] = await Promise.all(started.map((s, i) => awaitSeed(world.ctl.client, pairProcs[i]!, s, options(i))));
        const cpuAfter = allCpu();
        r.parallel.seedwireCpuSeconds = cpuBefore === null || cpuAfter === null ? null : round(cpuAfter - cpuBefore, 2);
        r.seed.runs.push(...runs);
        const peaks: Record<string, number | null> = { controller: world.peakRss(0).controller };
        world.pairs.forEach((_, i) => {
          const t = world.peakRss(i);
          peaks[`source-${i + 1}`] = t.source;
          peaks[`target-${i + 1}`] = t.target;
        });
        r.parallel.rss = peaks;
        for (const [i, run] of runs.entries()) await verifySeed(run, dataset, world.pairs[i]!.targetDir);
        const transfers = runs.map((run) => ({
          bytes: dataset.bytes,
          interval: run.transferStartMs !== null && run.transferEndMs !== null ? { startMs: run.transferStartMs, endMs: run.transferEndMs } : null,
        }));
        const rate = aggregateRate(transfers);
        r.parallel.seedwireAggregateMBps = rate === null ? null : round(rate / MB);
        if (transfers.every((t) => t.interval !== null)) {
          r.parallel.seedwireSeconds = round((Math.max(...transfers.map((t) => t.interval!.endMs)) - Math.min(...transfers.map((t) => t.interval!.startMs))) / 1000, 2);
        }
      } finally {
        await world.close();
      }
    } catch (error) {
      ctx.fail('parallel seeds', error);
    }
    await quietDisk();
    const after = await tarAtOnce(ctx, 'after the seeds');
    // Judged against the faster of the two (this VM's write path swings within minutes: docs/performance.md, "When the disk swings").
    r.parallel.pairedTarNcMBps = [before?.aggregateMBps ?? null, after?.aggregateMBps ?? null];
    const faster = before === null || (after !== null && (after.aggregateMBps ?? 0) > (before.aggregateMBps ?? 0)) ? after : before;
    r.parallel.tarNcAggregateMBps = faster?.aggregateMBps ?? null;
    r.parallel.tarNcSeconds = faster?.seconds ?? null;
    r.parallel.tarNcCpu = faster?.cpu ?? null;
    r.parallel.ratio = ratio(r.parallel.seedwireAggregateMBps, r.parallel.tarNcAggregateMBps);
    r.parallel.cpuRatio = ratio(r.parallel.seedwireCpuSeconds, pipeCpuSeconds(r.parallel.tarNcCpu));
    ctx.figure({ key: 'parallel.ratio', what: `${n} seeds at once through one controller / ${n} tar | nc at once (aggregate)`, value: r.parallel.ratio, unit: '×', target: atLeast(0.9) });
  },
};
