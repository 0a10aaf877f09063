/**
 * What a DBA would script instead of seedwire, on the same dataset: `tar | nc` and
 * `tar | zstd -1 | nc | zstd -d | tar` between two local directories over loopback, best of two
 * each. The seed sections compare against these. Also `tar | nc` through a `socat` relay on the
 * same machine: the ceiling of any design whose bytes cross a third process (the controller),
 * reported beside the seed (`seed.relayCeiling`), not judged.
 */
import { join } from 'node:path';
import { compareTrees } from '../dataset.js';
import { MB, quietDisk, runTimedShell, shq, tarPipes, type PipeKind } from '../harness.js';
import { makeTemp, removeTemp, type CpuTimes, type PipeCpu } from '../procs.js';
import type { BenchContext, BenchSection } from '../section.js';
import { round } from '../targets.js';

interface Copy {
  seconds: number;
  syncSeconds: number;
  cpu: PipeCpu;
  /** CPU of the fdatasync of every file (the calls that start the kernel's writeback and wait for it). */
  syncCpu: CpuTimes | null;
  stealSeconds: number | null;
}

async function copyOnce(ctx: BenchContext, kind: PipeKind, work: string, withSync: boolean, when = ''): Promise<Copy> {
  const target = join(work, `${kind}-dst`);
  const [run] = await tarPipes(kind, [{ source: ctx.dataset.dir, target }], ctx.env.seedTimeoutMs);
  const seconds = (run!.endMs - run!.startMs) / 1000;
  const check = await compareTrees(ctx.dataset.dir, target, new Set());
  if (check.problem) throw new Error(`tar|${kind} copy differs: ${check.problem}`);
  let syncSeconds = 0;
  let syncCpu: CpuTimes | null = null;
  if (withSync) {
    // What seedwire's receiver also does: fdatasync every file it wrote.
    const t1 = performance.now();
    syncCpu = await runTimedShell('sync', `find ${shq(target)} -type f -print0 | xargs -0 sync --data`);
    syncSeconds = (performance.now() - t1) / 1000;
  }
  removeTemp(target);
  const receiver = run!.cpu.receiver;
  ctx.log(`  tar|${kind} copy${when === '' ? '' : ` ${when}`}: ${seconds.toFixed(2)} s${receiver ? `, receiver sys ${receiver.sys.toFixed(2)} s` : ''}`);
  return { seconds, syncSeconds, cpu: run!.cpu, syncCpu, stealSeconds: run!.stealSeconds };
}

/**
 * One `tar | nc` copy between local directories, next to a seed: this machine's disk and kernel
 * costs swing severalfold within minutes (docs/performance.md, "When the disk swings"), so the
 * seed is judged against copies made just before and just after it, not only against the
 * baseline's of minutes earlier. Returns MB/s; what it wrote is gone and written back when it returns.
 */
export async function tarNcAlongside(ctx: BenchContext, when: string): Promise<number> {
  const work = makeTemp('seedwire-benchrun-tar-');
  try {
    const copy = await copyOnce(ctx, 'plain', work, false, when);
    return Math.round((ctx.dataset.bytes / MB / copy.seconds) * 10) / 10;
  } finally {
    removeTemp(work);
    await quietDisk();
  }
}

/** The faster of two copies of `kind` (the first warms the page cache for the second). */
async function bestOfTwo(ctx: BenchContext, kind: PipeKind, work: string, withSync: boolean): Promise<Copy> {
  const a = await copyOnce(ctx, kind, work, withSync);
  const b = await copyOnce(ctx, kind, work, withSync);
  return a.seconds <= b.seconds ? a : b;
}

export const baselineSection: BenchSection = {
  key: 'baseline',
  title: 'tar | nc and tar | zstd -1 | nc | zstd -d | tar between local directories (best of 2)',
  async run(ctx) {
    const work = makeTemp('seedwire-benchrun-tar-');
    const { bytes } = ctx.dataset;
    const { seed } = ctx.results;
    try {
      try {
        const best = await bestOfTwo(ctx, 'plain', work, true);
        seed.tarNcSeconds = round(best.seconds, 2);
        seed.tarNcMBps = round(bytes / MB / best.seconds);
        seed.tarNcSyncMBps = round(bytes / MB / (best.seconds + best.syncSeconds));
        seed.tarNcCpu = best.cpu;
        seed.tarNcSyncCpu = best.syncCpu;
        seed.tarNcStealSeconds = best.stealSeconds;
      } catch (error) {
        ctx.fail('tar|nc', error);
      }
      try {
        const best = await bestOfTwo(ctx, 'relay', work, false);
        seed.tarNcRelaySeconds = round(best.seconds, 2);
        seed.tarNcRelayMBps = round(bytes / MB / best.seconds);
      } catch (error) {
        ctx.fail('tar|nc through a relay', error);
      }
      try {
        const best = await bestOfTwo(ctx, 'zstd', work, false);
        seed.tarZstdNcSeconds = round(best.seconds, 2);
        seed.tarZstdNcMBps = round(bytes / MB / best.seconds);
        seed.tarZstdNcCpu = best.cpu;
        seed.tarZstdNcStealSeconds = best.stealSeconds;
      } catch (error) {
        ctx.fail('tar|zstd|nc', error);
      }
    } finally {
      removeTemp(work);
    }
  },
};
