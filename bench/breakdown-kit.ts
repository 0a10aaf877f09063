/** What the breakdown scripts (command-breakdown.ts, cluster-breakdown.ts) share. */
import { cleanupAll } from './procs.js';
import { requireBuilt } from './harness.js';

/** The p-quantile (0..1) of `samples`, nearest rank. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

/** Runs a breakdown script's main: exit 0, or print the failure, stop what it started and exit 1. */
export function runBreakdown(name: string, main: () => Promise<void>): void {
  Promise.resolve()
    .then(() => {
      requireBuilt();
      return main();
    })
    .then(
    () => process.exit(0),
    async (error: unknown) => {
      process.stderr.write(`${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      await cleanupAll();
      process.exit(1);
    },
  );
}

/** Times `n` sequential calls; `ownCpuMs`: this process's CPU over them, per call. */
export async function timeCalls(n: number, once: () => Promise<unknown>): Promise<{ samples: number[]; ownCpuMs: number }> {
  const self = process.cpuUsage();
  const samples: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  const own = process.cpuUsage(self);
  return { samples, ownCpuMs: (own.user + own.system) / 1000 / n };
}
