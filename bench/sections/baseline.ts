/**
 * What a DBA would script instead of seedwire, on the same dataset: `tar | nc` and
 * `tar | zstd -1 | nc | zstd -d | tar` between two local directories over loopback, best of two
 * each. The seed sections compare against these. Also `tar | nc` through a `socat` relay on the
 * same machine: the ceiling of any design whose bytes cross a third process (the controller),
 * reported beside the seed (`seed.relayCeiling`), not judged.
 */
import { join } from 'node:path';
import { compareTrees } from '../dataset.js';
import { MB, runShell, shq, tarPipes, type PipeKind } from '../harness.js';
import { makeTemp, removeTemp } from '../procs.js';
import type { BenchContext, BenchSection } from '../section.js';
import { round } from '../targets.js';

async function copyOnce(ctx: BenchContext, kind: PipeKind, work: string, withSync: boolean): Promise<{ seconds: number; syncSeconds: number }> {
  const target = join(work, `${kind}-dst`);
  const [interval] = await tarPipes(kind, [{ source: ctx.dataset.dir, target }], ctx.env.seedTimeoutMs);
  const seconds = (interval!.endMs - interval!.startMs) / 1000;
  const check = await compareTrees(ctx.dataset.dir, target, new Set());
  if (check.problem) throw new Error(`tar|${kind} copy differs: ${check.problem}`);
  let syncSeconds = 0;
  if (withSync) {
    // What seedwire's receiver also does: fdatasync every file it wrote.
    const t1 = performance.now();
    await runShell('sync', `find ${shq(target)} -type f -print0 | xargs -0 sync --data`);
    syncSeconds = (performance.now() - t1) / 1000;
  }
  removeTemp(target);
  return { seconds, syncSeconds };
}

export const baselineSection: BenchSection = {
  key: 'baseline',
  title: 'tar | nc and tar | zstd -1 | nc | zstd -d | tar between local directories (best of 2)',
  async run(ctx) {
    const work = makeTemp('seedwire-benchrun-tar-');
    const { bytes } = ctx.dataset;
    try {
      try {
        const a = await copyOnce(ctx, 'plain', work, true);
        const b = await copyOnce(ctx, 'plain', work, true);
        const best = a.seconds <= b.seconds ? a : b;
        ctx.results.seed.tarNcSeconds = round(best.seconds, 2);
        ctx.results.seed.tarNcMBps = round(bytes / MB / best.seconds);
        ctx.results.seed.tarNcSyncMBps = round(bytes / MB / (best.seconds + best.syncSeconds));
      } catch (error) {
        ctx.fail('tar|nc', error);
      }
      try {
        const a = await copyOnce(ctx, 'relay', work, false);
        const b = await copyOnce(ctx, 'relay', work, false);
        const best = Math.min(a.seconds, b.seconds);
        ctx.results.seed.tarNcRelaySeconds = round(best, 2);
        ctx.results.seed.tarNcRelayMBps = round(bytes / MB / best);
      } catch (error) {
        ctx.fail('tar|nc through a relay', error);
      }
      try {
        const a = await copyOnce(ctx, 'zstd', work, false);
        const b = await copyOnce(ctx, 'zstd', work, false);
        const best = Math.min(a.seconds, b.seconds);
        ctx.results.seed.tarZstdNcSeconds = round(best, 2);
        ctx.results.seed.tarZstdNcMBps = round(bytes / MB / best);
      } catch (error) {
        ctx.fail('tar|zstd|nc', error);
      }
    } finally {
      removeTemp(work);
    }
  },
};
