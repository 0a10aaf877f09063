/**
 * Turns V8 .cpuprofile files (node --cpu-prof, e.g. from SEEDWIRE_BENCH_PROFILE=DIR make bench)
 * into top-N self-time tables per function and per module (file), as Markdown for
 * docs/performance.md.
 *
 *   npx tsx bench/profile-summary.ts [--top N] FILE.cpuprofile...
 *
 * Shares are of the process's busy time (every sample but "(idle)"), so profiles taken on a
 * machine that is busier or idler than another compare by where the CPU went, not by how long
 * the process waited. The summary itself is pure (summarizeProfile) and tested on a literal profile.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The parts of V8's profile format (Profiler.Profile in the DevTools protocol) used here. */
export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }>;
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface Row {
  name: string;
  selfMs: number;
  /** Share of busy time, 0..1. */
  share: number;
}

export interface ProfileSummary {
  /** What the process most likely was: controller, source agent, target agent, or unknown. */
  role: string;
  wallMs: number;
  busyMs: number;
  functions: Row[];
  modules: Row[];
  /** Project functions by total time (self and callees): where native work such as lstat or spawn came from. */
  projectTotals: Row[];
}

/** Pseudo-frames V8 records: time not spent in JavaScript or native code it can attribute. */
const IDLE = '(idle)';

/** A script URL as a short module name: the project-relative path, the npm package's path, or node's own. */
export function moduleOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return url;
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length);
  // Project files: the path from the first top-level folder of this repository (dist/ or sources).
  const project = /\/(?:dist\/)?((?:agent|server-stub|shared|client|cli|bench|test)\/.*)$/.exec(path);
  if (project) return project[1]!;
  path = path.replace(/^.*\/(?=[^/]+\/[^/]+$)/, '');
  return path;
}

function guessRole(selfByModule: Map<string, number>): string {
  const has = (prefix: string): boolean => [...selfByModule.keys()].some((m) => m.startsWith(prefix));
  if (has('server-stub/')) return 'controller';
  if (has('agent/transfer/receive') || has('agent/transfer/safe-tree') || has('agent/transfer/decoder')) return 'target agent';
  if (has('agent/transfer/send') || has('agent/transfer/walk')) return 'source agent';
  if (has('agent/')) return 'agent';
  return 'unknown';
}

/** Project code: what this repository wrote, as opposed to node, npm packages and V8. */
function isProject(module: string): boolean {
  return /^(agent|server-stub|shared|client|cli)\//.test(module);
}

function frameKey(frame: { functionName: string; url: string; lineNumber: number }): { fn: string; module: string } {
  const module = moduleOf(frame.url, frame.functionName);
  const fn = frame.url === '' ? frame.functionName || '(anonymous)' : `${frame.functionName || '(anonymous)'} ${module}:${frame.lineNumber + 1}`;
  return { fn, module };
}

function topRows(map: Map<string, number>, busyMs: number, top: number): Row[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, selfMs]) => ({ name, selfMs, share: busyMs > 0 ? selfMs / busyMs : 0 }));
}

export function summarizeProfile(profile: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfById = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // timeDeltas[i] is the time before sample i; the time a sample stands for is the next delta.
  for (let i = 0; i < samples.length; i++) {
    const ms = (deltas[i + 1] ?? 0) / 1000;
    selfById.set(samples[i]!, (selfById.get(samples[i]!) ?? 0) + ms);
  }
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let busyMs = 0;
  for (const [id, ms] of selfById) {
    const frame = byId.get(id)?.callFrame;
    if (!frame || frame.functionName === IDLE) continue;
    busyMs += ms;
    const { fn, module } = frameKey(frame);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    byModule.set(module, (byModule.get(module) ?? 0) + ms);
  }
  return {
    role: guessRole(byModule),
    projectTotals: topRows(totalsOfProjectFunctions(profile, byId, selfById), busyMs, top),
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs,
    functions: topRows(byFunction, busyMs, top),
    modules: topRows(byModule, busyMs, top),
  };
}

/** Total (self + callees) busy time per project function; a function recursing into itself counts once. */
function totalsOfProjectFunctions(profile: CpuProfile, byId: Map<number, CpuProfile['nodes'][number]>, selfById: Map<number, number>): Map<string, number> {
  const totals = new Map<string, number>();
  const root = profile.nodes[0];
  if (!root) return totals;
  const onPath = new Map<string, number>();
  // Iterative depth-first walk: returns each subtree's busy time, adding it to the project
  // functions that are not already counted by an ancestor frame of the same function.
  const visit = (id: number): number => {
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === IDLE) return 0;
    const { fn, module } = frameKey(node.callFrame);
    const counted = isProject(module) && !onPath.get(fn);
    if (counted) onPath.set(fn, 1);
    let total = selfById.get(id) ?? 0;
    for (const child of node.children ?? []) total += visit(child);
    if (counted) {
      onPath.delete(fn);
      totals.set(fn, (totals.get(fn) ?? 0) + total);
    }
    return total;
  };
  visit(root.id);
  return totals;
}

export function formatSummary(title: string, s: ProfileSummary): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const table = (head: string, rows: Row[]): string[] => [
    `| ${head} | self ms | share of busy |`,
    '| --- | ---: | ---: |',
    ...rows.map((r) => `| \`${r.name.replace(/\|/g, '\\|')}\` | ${r.selfMs.toFixed(0)} | ${pct(r.share)} |`),
  ];
  return [
    `#### ${title}: ${s.role}, busy ${(s.busyMs / 1000).toFixed(2)} s of ${(s.wallMs / 1000).toFixed(1)} s`,
    '',
    ...table('module', s.modules),
    '',
    ...table('function', s.functions),
    '',
    ...table('project function (self + callees)', s.projectTotals).map((line, i) => (i === 0 ? line.replace('self ms', 'total ms') : line)),
    '',
  ].join('\n');
}

function main(argv: string[]): number {
  let top = 15;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--top') {
      top = Number(argv[++i]);
      if (!Number.isInteger(top) || top < 1) {
        process.stderr.write(`--top: expected a positive integer, got '${argv[i]}'\n`);
        return 2;
      }
    } else files.push(arg);
  }
  if (files.length === 0) {
    process.stderr.write('usage: npx tsx bench/profile-summary.ts [--top N] FILE.cpuprofile...\n');
    return 2;
  }
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    process.stdout.write(`${formatSummary(basename(file), summarizeProfile(profile, top))}\n`);
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
