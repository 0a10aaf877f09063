/**
 * The shape of bench/results/latest.json. Keys that README and docs/performance.md quote
 * (seed.*, rss.*, latency.*, idle.*) keep their names; `targets` lists every figure with its
 * target and verdict; `sections` holds what sections added later record under their own key.
 */
import { readFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, totalmem } from 'node:os';
import { pageReporting } from './host-memory.js';
import type { BenchEnv } from './env.js';
import type { CpuTimes, PipeCpu } from './procs.js';
import type { Figure, LatencyStats } from './targets.js';

export interface SeedRun {
  id: string | null;
  /** Which measurement the seed belongs to (single, during-ops, parallel-2, doubled...). */
  label: string;
  compression: string;
  /** `lanes` as requested, and as the controller reports it when it does. */
  lanes: number;
  effectiveLanes: number | null;
  state: string;
  error: { code: string; message: string } | null;
  seedSeconds: number | null;
  transferSeconds: number | null;
  /** The transfer stage's start and end (controller clock, ms since the epoch). */
  transferStartMs: number | null;
  transferEndMs: number | null;
  stages: Array<{ name: string; state: string; seconds: number | null; message: string | null }>;
  /** User + system CPU seconds of each process during the seed, and the system part alone. */
  cpuSeconds: Record<string, number | null>;
  cpuSysSeconds: Record<string, number | null>;
  /** CPU seconds the hypervisor took from the machine while the seed ran (both cores), or null. */
  stealSeconds: number | null;
  verified: string | null;
}

export type RssTriple = Record<'controller' | 'source' | 'target', number | null>;

function cpuModel(): string | null {
  return cpus()[0]?.model.trim() ?? null;
}

function osName(): string | null {
  try {
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

const round2 = (l: number): number => Math.round(l * 100) / 100;

export function makeResults(env: BenchEnv) {
  return {
    at: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      // extras: the machine's description, and other work on it (skews every number), at start and end
      cpuModel: cpuModel(),
      os: osName(),
      kernel: release(),
      hostname: hostname(),
      loadAvgStart: loadavg().map(round2),
      loadAvgEnd: null as number[] | null,
      // free page reporting (bench/host-memory.ts): on, and MiB handed back to the host per section
      pageReporting: pageReporting(),
      reportedToHostMiB: {} as Record<string, number>,
    },
    config: {
      quick: env.quick,
      requestedBytes: env.bytes,
      lanes: env.lanes,
      parallel: env.parallel,
      double: env.double,
      sections: env.sections === null ? null : [...env.sections],
    },
    dataset: {
      bytes: 0,
      files: 0,
      // extras
      key: null as string | null,
      datadirBytes: null as number | null,
      generatedSeconds: null as number | null,
      doubled: null as null | { key: string; bytes: number; files: number },
    },
    seed: {
      tarNcMBps: null as number | null,
      seedwireMBps: null as number | null,
      /** The seed against the faster of `tar | nc` copies made just before and just after it (pairedTarNcMBps). */
      ratio: null as number | null,
      zstdMBps: null as number | null,
      seedSeconds: null as number | null,
      transferSeconds: null as number | null,
      // extras
      lanes: env.lanes,
      tarNcSeconds: null as number | null,
      tarNcSyncMBps: null as number | null,
      /** `tar | nc` right before and right after the seed (null: that copy failed). */
      pairedTarNcMBps: null as Array<number | null> | null,
      /** The seed against the baseline section's best of two, minutes earlier (before 2026-12-03 this was `ratio`). */
      baselineRatio: null as number | null,
      seedwireWholeMBps: null as number | null,
      zstdSeedSeconds: null as number | null,
      zstdTransferSeconds: null as number | null,
      /** `tar | zstd -1 | nc | zstd -d | tar` and the zstd seed against it. */
      tarZstdNcMBps: null as number | null,
      tarZstdNcSeconds: null as number | null,
      zstdRatio: null as number | null,
      /** `tar | nc` through a socat relay on this machine, and the seed against it (not a target: where a relayed design tops out here). */
      tarNcRelayMBps: null as number | null,
      tarNcRelaySeconds: null as number | null,
      relayCeiling: null as number | null,
      relayRatio: null as number | null,
      /** The seed against `tar | nc` followed by an fdatasync of every file it wrote, as the seed's receiver does (not a target: the same durability on both sides). */
      syncRatio: null as number | null,
      /** CPU of each end of the best `tar | nc` and `tar | zstd | nc` copies, and the seeds' CPU (controller and both agents) against them. */
      tarNcCpu: null as PipeCpu | null,
      tarZstdNcCpu: null as PipeCpu | null,
      cpuRatio: null as number | null,
      /** The fdatasync of every file `tar | nc` wrote (its writeback runs in the syncing process, as the seed's runs in its target), and the seed against both. */
      tarNcSyncCpu: null as CpuTimes | null,
      /** CPU seconds the hypervisor took from the machine during the best `tar | nc` and `tar | zstd | nc` copies. */
      tarNcStealSeconds: null as number | null,
      tarZstdNcStealSeconds: null as number | null,
      syncCpuRatio: null as number | null,
      zstdCpuRatio: null as number | null,
      runs: [] as SeedRun[],
    },
    parallel: {
      pairs: env.parallel,
      /** The faster of the pipelines' runs just before and just after the seeds (pairedTarNcMBps: both). */
      tarNcAggregateMBps: null as number | null,
      tarNcSeconds: null as number | null,
      pairedTarNcMBps: null as Array<number | null> | null,
      seedwireAggregateMBps: null as number | null,
      seedwireSeconds: null as number | null,
      ratio: null as number | null,
      /** CPU of the pipelines (summed); of the controller and every agent over the seeds' span; the one against the other. */
      tarNcCpu: null as PipeCpu | null,
      seedwireCpuSeconds: null as number | null,
      cpuRatio: null as number | null,
      rss: null as null | Record<string, number | null>,
    },
    rss: {
      controllerMiB: null as number | null,
      sourceAgentMiB: null as number | null,
      targetAgentMiB: null as number | null,
      // extras: RSS just before the first seed, and the peak during the zstd seed alone
      beforeSeed: null as null | RssTriple,
      zstdSeed: null as null | RssTriple,
      /** The same seed (compression none) on a dataset of twice the size, fresh processes. */
      doubled: null as null | { bytes: number; peakMiB: RssTriple; growth: RssTriple },
    },
    latency: {
      p50Ms: null as number | null,
      p99Ms: null as number | null,
      maxMs: null as number | null,
      n: 0,
      meanMs: null as number | null,
      firstTenthP50Ms: null as number | null,
      lastTenthP50Ms: null as number | null,
      // extras: raw hub.call to a real agent (in-process controller, no HTTP, no store)
      raw: null as null | LatencyStats,
      /** `hostname` on the source agent over HTTP while that agent sends a seed. */
      duringSeed: null as null | LatencyStats,
    },
    idle: {
      agents: 0,
      connectSeconds: null as number | null,
      controllerRssDeltaMiB: null as number | null,
      perAgentKiB: null as number | null,
      allListed: null as boolean | null,
      // extras
      requested: env.idleAgents,
      controllerRssBeforeMiB: null as number | null,
      controllerRssAfterMiB: null as number | null,
      listSeconds: null as number | null,
      /** Connection attempts the controller's admission pacing answered 503 (each dialled again). */
      paced: null as number | null,
      note: null as string | null,
    },
    /** Every figure with a target, in the order measured. */
    targets: [] as Figure[],
    /** Sections added by others keep their figures' details here, under the section's key. */
    sections: {} as Record<string, unknown>,
    /** Wall seconds per section, and the whole run. */
    timings: {} as Record<string, number>,
    errors: [] as string[],
  };
}

export type BenchResults = ReturnType<typeof makeResults>;
