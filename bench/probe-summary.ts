/**
 * Summarises the files bench/probe.mjs writes (SEEDWIRE_BENCH_PROBE=DIR): per process, its peak
 * RSS and what held it (V8 heap, ArrayBuffers, resident memory by mapping), its collections by
 * kind, and how late its event loop ran (the worst second's p99 and the maximum), as Markdown
 * for docs/performance.md.
 *
 *   npx tsx bench/probe-summary.ts [--from MS --to MS] DIR/*.jsonl
 *
 * --from / --to (epoch milliseconds, e.g. a seed's transferStartMs and transferEndMs in
 * bench/results/latest.json) keep only what the probes recorded in that window.
 * The summary itself is pure (summarizeProbe) and tested on literal lines.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ProbeSummary {
  name: string;
  peakRssMiB: number;
  /** The memory sample at the peak: V8 heap used, external memory and ArrayBuffers (MiB). */
  atPeak: { heapUsed: number; external: number; arrayBuffers: number };
  /** Resident MiB by mapping at the last recorded peak, largest first. */
  mappings: Array<[string, number]>;
  gc: Record<string, { count: number; ms: number }>;
  /** The worst one-second p99 of event-loop delay, and the largest delay seen (ms). */
  loop: { worstP99: number; max: number } | null;
}

/** Epoch milliseconds; a line outside is left out. */
export interface Window {
  from: number;
  to: number;
}

interface Line {
  t?: number;
  rss?: number;
  heapUsed?: number;
  external?: number;
  arrayBuffers?: number;
  peak?: number;
  smaps?: Record<string, number>;
  loop?: { p50: number; p99: number; max: number };
  gc?: string;
  ms?: number;
}

export function summarizeProbe(name: string, text: string, window?: Window): ProbeSummary {
  const summary: ProbeSummary = { name, peakRssMiB: 0, atPeak: { heapUsed: 0, external: 0, arrayBuffers: 0 }, mappings: [], gc: {}, loop: null };
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    let line: Line;
    try {
      line = JSON.parse(raw) as Line;
    } catch {
      continue; // a line cut short when the process was killed
    }
    if (window && (line.t === undefined || line.t < window.from || line.t > window.to)) continue;
    if (line.rss !== undefined && line.rss > summary.peakRssMiB) {
      summary.peakRssMiB = line.rss;
      summary.atPeak = { heapUsed: line.heapUsed ?? 0, external: line.external ?? 0, arrayBuffers: line.arrayBuffers ?? 0 };
    }
    if (line.smaps) summary.mappings = Object.entries(line.smaps).sort((a, b) => b[1] - a[1]);
    if (line.gc !== undefined) {
      const kind = (summary.gc[line.gc] ??= { count: 0, ms: 0 });
      kind.count++;
      kind.ms += line.ms ?? 0;
    }
    if (line.loop) {
      const loop = (summary.loop ??= { worstP99: 0, max: 0 });
      loop.worstP99 = Math.max(loop.worstP99, line.loop.p99);
      loop.max = Math.max(loop.max, line.loop.max);
    }
  }
  for (const kind of Object.values(summary.gc)) kind.ms = Math.round(kind.ms * 10) / 10;
  return summary;
}

export function formatProbeSummaries(summaries: ProbeSummary[]): string {
  const mib = (n: number): string => n.toFixed(1);
  const rows = summaries.map((s) => {
    const mappings = s.mappings.slice(0, 4).map(([k, v]) => `${k} ${mib(v)}`).join(', ');
    const gc = Object.entries(s.gc)
      .map(([kind, g]) => `${kind} ${g.count} (${g.ms} ms)`)
      .join(', ');
    const loop = s.loop ? `${s.loop.worstP99} / ${s.loop.max}` : 'n/a';
    return `| ${s.name} | ${mib(s.peakRssMiB)} | ${mib(s.atPeak.heapUsed)} / ${mib(s.atPeak.external)} / ${mib(s.atPeak.arrayBuffers)} | ${mappings} | ${gc} | ${loop} |`;
  });
  return [
    '| process | peak RSS MiB | at the peak: heap used / external / ArrayBuffers MiB | resident by mapping at the peak, MiB | collections (time) | event loop delay: worst second p99 / max, ms |',
    '| --- | ---: | ---: | --- | --- | ---: |',
    ...rows,
  ].join('\n');
}

function main(argv: string[]): number {
  const files: string[] = [];
  let from: number | undefined;
  let to: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--from' || arg === '--to') {
      const value = Number(argv[++i]);
      if (!Number.isFinite(value)) {
        process.stderr.write(`${arg}: expected epoch milliseconds, got '${argv[i]}'\n`);
        return 2;
      }
      if (arg === '--from') from = value;
      else to = value;
    } else files.push(arg);
  }
  if (files.length === 0) {
    process.stderr.write('usage: npx tsx bench/probe-summary.ts [--from MS --to MS] DIR/*.jsonl\n');
    return 2;
  }
  const window = from === undefined && to === undefined ? undefined : { from: from ?? 0, to: to ?? Number.MAX_SAFE_INTEGER };
  const summaries = files.map((file) => summarizeProbe(basename(file, '.jsonl'), readFileSync(file, 'utf8'), window));
  process.stdout.write(`${formatProbeSummaries(summaries)}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
