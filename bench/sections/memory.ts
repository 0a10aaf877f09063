/**
 * Is peak RSS bounded by credit, not by the dataset? The seed section's seed (compression none)
 * again, in fresh processes, on a dataset of twice the size (the recipe at twice the size: the
 * large tables and the datadir's rows double, the 2,000 small tables stay), and each process's
 * peak against the seed section's.
 */
import { runSeed, startSeedWorld } from '../harness.js';
import type { RssTriple } from '../results.js';
import type { BenchSection } from '../section.js';
import { atMost, ratio } from '../targets.js';
import { verifySeed } from './seed.js';

/** Doubled peak over base peak at most this: "flat" allows noise, not growth with the data. */
export const FLAT_RSS_RATIO = 1.1;

const WHO = [
  ['controller', 'controller'],
  ['source', 'source agent'],
  ['target', 'target agent'],
] as const;

export const memorySection: BenchSection = {
  key: 'memory',
  title: 'peak RSS of the same seed on a dataset of twice the size',
  async run(ctx) {
    const { results: r, env } = ctx;
    const base: RssTriple = { controller: r.rss.controllerMiB, source: r.rss.sourceAgentMiB, target: r.rss.targetAgentMiB };
    let growth: RssTriple = { controller: null, source: null, target: null };
    if (!env.double) {
      ctx.log('SEEDWIRE_BENCH_DOUBLE=0: skipped');
    } else {
      try {
        const doubled = await ctx.datasetOfSize(ctx.dataset.recipe.totalBytes * 2);
        r.dataset.doubled = { key: doubled.key, bytes: doubled.bytes, files: doubled.files };
        const world = await startSeedWorld('mem', [doubled.dir]);
        try {
          const run = await runSeed(world.ctl.client, world.procs, world.pairs[0]!, { label: 'doubled', compression: 'none', lanes: env.lanes, timeoutMs: env.seedTimeoutMs * 2 });
          r.seed.runs.push(run);
          const peak = world.peakRss();
          await verifySeed(run, doubled, world.pairs[0]!.targetDir);
          growth = { controller: ratio(peak.controller, base.controller), source: ratio(peak.source, base.source), target: ratio(peak.target, base.target) };
          r.rss.doubled = { bytes: doubled.bytes, peakMiB: peak, growth };
        } finally {
          await world.close();
        }
      } catch (error) {
        ctx.fail('memory (doubled dataset)', error);
      }
    }
    for (const [k, name] of WHO) {
      ctx.figure({ key: `rss.doubled.growth.${k}`, what: `peak RSS, doubled dataset / base: ${name}`, value: growth[k], unit: '×', target: atMost(FLAT_RSS_RATIO), note: !env.double ? 'skipped: SEEDWIRE_BENCH_DOUBLE=0' : base[k] === null ? 'no base figure (seed section)' : null });
    }
  },
};
