/**
 * The printed form of a bench run: every target figure with PASS/FAIL first, then the details
 * each section recorded (the keys of latest.json in words).
 */
import type { CpuTimes, PipeCpu } from './procs.js';
import type { BenchResults } from './results.js';
import { formatTarget, type Figure } from './targets.js';

const MiB = 2 ** 20;

function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}

export function targetsTable(figures: readonly Figure[]): string {
  const mark = { pass: 'PASS', fail: 'FAIL', 'n/a': 'n/a' } as const;
  const rows = [['what', 'measured', 'target', 'verdict', 'key (note)'], ...figures.map((f) => [f.what, f.value === null ? 'n/a' : `${f.value}${f.unit}`, formatTarget(f.target, f.unit), mark[f.verdict], f.key + (f.note ? `  (${f.note})` : '')])];
  const passed = figures.filter((f) => f.verdict === 'pass').length;
  const failed = figures.filter((f) => f.verdict === 'fail').length;
  return `${columns(rows)}\n${passed} pass, ${failed} fail, ${figures.length - passed - failed} not measured`;
}

/** `user 1.20 + sys 2.30` (CPU seconds), or n/a. */
function cpuTimesText(t: CpuTimes | null): string {
  return t === null ? 'n/a' : `user ${t.user.toFixed(2)} + sys ${t.sys.toFixed(2)}`;
}

/** `sender user 1.20 + sys 2.30, receiver ...` (CPU seconds of each end of a pipeline), or n/a. */
export function pipeCpu(cpu: PipeCpu | null): string {
  return cpu === null ? 'n/a' : `sender ${cpuTimesText(cpu.sender)}, receiver ${cpuTimesText(cpu.receiver)}`;
}

export function detailsTable(r: BenchResults): string {
  const f = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'n/a' : `${v}${unit}`);
  const rows: Array<[string, string]> = [];
  const section = (title: string): void => void rows.push([`— ${title}`, '']);
  section(`dataset ${r.dataset.key ?? '?'}: ${(r.dataset.bytes / MiB).toFixed(0)} MiB in ${r.dataset.files} files (MariaDB datadir ${f(r.dataset.datadirBytes === null ? null : Math.round(r.dataset.datadirBytes / MiB), ' MiB')})`);
  rows.push(['machine', `${r.machine.cpus} × ${r.machine.cpuModel ?? '?'}, ${r.machine.memGiB} GiB, ${r.machine.os ?? '?'} (kernel ${r.machine.kernel}), node ${r.machine.node}`]);
  const handedBack = Object.entries(r.machine.reportedToHostMiB);
  if (r.machine.pageReporting !== null) {
    rows.push(['memory handed back to the host', handedBack.length === 0 ? 'free page reporting on (not counted by this kernel)' : `${handedBack.map(([key, mib]) => `${key} ${mib}`).join(', ')} MiB (free page reporting: memory touched again costs a host fault per page)`]);
  }
  rows.push(['load average (1 min) start / end', `${r.machine.loadAvgStart[0]} / ${r.machine.loadAvgEnd?.[0] ?? 'n/a'}${(r.machine.loadAvgStart[0] ?? 0) > r.machine.cpus * 0.5 ? '  (busy machine: numbers are noisy)' : ''}`]);
  rows.push(['lanes requested per seed', String(r.seed.lanes)]);
  rows.push(['tar | nc (local dirs)', `${f(r.seed.tarNcMBps, ' MB/s')}  (${f(r.seed.tarNcSeconds, ' s')}; with per-file fdatasync: ${f(r.seed.tarNcSyncMBps, ' MB/s')})`]);
  rows.push(['  CPU s (tar | nc)', `${pipeCpu(r.seed.tarNcCpu)}; the fdatasync of its files ${cpuTimesText(r.seed.tarNcSyncCpu)}; stolen by the hypervisor ${f(r.seed.tarNcStealSeconds)}`]);
  rows.push(['tar | nc through a socat relay', `${f(r.seed.tarNcRelayMBps, ' MB/s')}  (${f(r.seed.tarNcRelaySeconds, ' s')}; ${f(r.seed.relayCeiling)}× tar | nc: the most a relayed copy reaches on this machine)`]);
  rows.push(['tar | zstd -1 | nc | zstd -d | tar', `${f(r.seed.tarZstdNcMBps, ' MB/s')}  (${f(r.seed.tarZstdNcSeconds, ' s')})`]);
  rows.push(['  CPU s (tar | zstd | nc)', `${pipeCpu(r.seed.tarZstdNcCpu)}; stolen by the hypervisor ${f(r.seed.tarZstdNcStealSeconds)}`]);
  rows.push(['seedwire transfer, none', `${f(r.seed.seedwireMBps, ' MB/s')}  (${f(r.seed.transferSeconds, ' s')})`]);
  const paired = r.seed.pairedTarNcMBps;
  rows.push(['tar | nc just before / after the seed', paired === null ? 'n/a' : `${paired.map((mbps) => f(mbps, ' MB/s')).join(' / ')}  (the seed is judged against the faster)`]);
  rows.push(['seedwire / tar|nc', `${f(r.seed.ratio)}  (${f(r.seed.baselineRatio)}× the baseline's tar | nc; ${f(r.seed.relayRatio)}× the relayed tar | nc; ${f(r.seed.syncRatio)}× tar | nc with per-file fdatasync, the seed's own durability)`]);
  rows.push(['seedwire whole seed, none', `${f(r.seed.seedSeconds, ' s')}  (${f(r.seed.seedwireWholeMBps, ' MB/s')} end to end)`]);
  rows.push(['seedwire transfer, zstd', `${f(r.seed.zstdMBps, ' MB/s')}  (${f(r.seed.zstdTransferSeconds, ' s')}; whole seed ${f(r.seed.zstdSeedSeconds, ' s')})`]);
  rows.push(['seedwire zstd / tar|zstd|nc', f(r.seed.zstdRatio)]);
  rows.push(['CPU, seed / tar | nc', `none ${f(r.seed.cpuRatio)}× (${f(r.seed.syncCpuRatio)}× tar | nc and the fdatasync of its files), zstd ${f(r.seed.zstdCpuRatio)}×  (controller + both agents against both ends of the pipeline)`]);
  for (const run of r.seed.runs) {
    const label = `${run.label}, ${run.compression}`;
    const stages = run.stages.map((s) => `${s.name} ${s.seconds === null ? s.state : `${s.seconds.toFixed(2)}s`}`).join(', ');
    rows.push([`  stages (${label})`, stages]);
    const cpu = Object.entries(run.cpuSeconds).map(([k, v]) => `${k} ${v ?? 'n/a'} (sys ${run.cpuSysSeconds[k] ?? 'n/a'})`).join(', ');
    rows.push([`  CPU s (${label})`, `${cpu}; stolen by the hypervisor ${f(run.stealSeconds)}`]);
    if (run.state !== 'succeeded') rows.push([`  FAILED (${label})`, `${run.state}: ${run.error?.code}: ${run.error?.message}`]);
    else rows.push([`  verify (${label})`, run.verified ?? 'n/a']);
  }
  section(`${r.parallel.pairs} at once`);
  const pairedAtOnce = r.parallel.pairedTarNcMBps;
  rows.push([`${r.parallel.pairs} × tar | nc, aggregate`, `${f(r.parallel.tarNcAggregateMBps, ' MB/s')}  (${f(r.parallel.tarNcSeconds, ' s')}; the faster of ${pairedAtOnce === null ? 'n/a' : pairedAtOnce.map((mbps) => f(mbps, ' MB/s')).join(' before and ')} after the seeds)`]);
  rows.push([`${r.parallel.pairs} seeds, aggregate transfer`, `${f(r.parallel.seedwireAggregateMBps, ' MB/s')}  (${f(r.parallel.seedwireSeconds, ' s')}); ratio ${f(r.parallel.ratio)}`]);
  rows.push(['  CPU s', `${r.parallel.pairs} × tar | nc: ${pipeCpu(r.parallel.tarNcCpu)}; seeds (controller + every agent): ${f(r.parallel.seedwireCpuSeconds)}; ${f(r.parallel.cpuRatio)}× the CPU of tar | nc`]);
  if (r.parallel.rss) rows.push(['  peak RSS MiB', Object.entries(r.parallel.rss).map(([k, v]) => `${k} ${f(v)}`).join(', ')]);
  section('peak RSS (VmHWM), MiB');
  rows.push(['controller / source / target', `${f(r.rss.controllerMiB)} / ${f(r.rss.sourceAgentMiB)} / ${f(r.rss.targetAgentMiB)}`]);
  if (r.rss.beforeSeed) rows.push(['  RSS before the seed', `${f(r.rss.beforeSeed.controller)} / ${f(r.rss.beforeSeed.source)} / ${f(r.rss.beforeSeed.target)}`]);
  if (r.rss.zstdSeed) rows.push(['  peak during zstd seed', `${f(r.rss.zstdSeed.controller)} / ${f(r.rss.zstdSeed.source)} / ${f(r.rss.zstdSeed.target)}`]);
  if (r.rss.doubled) {
    const d = r.rss.doubled;
    rows.push([`  doubled dataset (${(d.bytes / MiB).toFixed(0)} MiB)`, `${f(d.peakMiB.controller)} / ${f(d.peakMiB.source)} / ${f(d.peakMiB.target)}  (× ${f(d.growth.controller)} / ${f(d.growth.source)} / ${f(d.growth.target)})`]);
  }
  section(`op round trip (${r.latency.n} sequential hostname ops)`);
  rows.push(['HTTP → controller → agent', `p50 ${f(r.latency.p50Ms, ' ms')}, p99 ${f(r.latency.p99Ms, ' ms')}, max ${f(r.latency.maxMs, ' ms')}  (p50 first/last tenth ${f(r.latency.firstTenthP50Ms)}/${f(r.latency.lastTenthP50Ms)} ms)`]);
  const during = r.latency.duringSeed;
  rows.push(['HTTP, during a seed (source)', during ? `p50 ${during.p50Ms} ms, p99 ${during.p99Ms} ms, max ${during.maxMs} ms  (${during.n} ops)` : 'n/a']);
  const raw = r.latency.raw;
  rows.push(['raw hub.call → agent', raw ? `p50 ${raw.p50Ms} ms, p99 ${raw.p99Ms} ms, max ${raw.maxMs} ms  (p50 first/last tenth ${raw.firstTenthP50Ms}/${raw.lastTenthP50Ms} ms)` : 'n/a']);
  section('idle agents on one controller');
  rows.push(['agents connected', `${r.idle.agents}${r.idle.agents !== r.idle.requested ? ` (requested ${r.idle.requested})` : ''} in ${f(r.idle.connectSeconds, ' s')}; all listed: ${r.idle.allListed ?? 'n/a'}`]);
  rows.push(['controller RSS', `${f(r.idle.controllerRssBeforeMiB)} → ${f(r.idle.controllerRssAfterMiB)} MiB (+${f(r.idle.controllerRssDeltaMiB)} MiB, ${f(r.idle.perAgentKiB)} KiB per agent)`]);
  rows.push(['GET /api/agents', f(r.idle.listSeconds, ' s')]);
  if (r.idle.note) rows.push(['  note', r.idle.note]);
  section('seconds per section');
  rows.push(['', Object.entries(r.timings).map(([k, v]) => `${k} ${v}`).join(', ')]);
  if (r.errors.length > 0) {
    section('errors');
    for (const e of r.errors) rows.push(['', e]);
  }
  const width = Math.max(...rows.filter(([, v]) => v !== '').map(([k]) => k.length));
  return rows.map(([k, v]) => (v === '' ? k : `${k.padEnd(width)}  ${v}`)).join('\n');
}
