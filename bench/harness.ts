/**
 * What `make bench`'s sections start and drive: a real controller and real agents from dist/,
 * seeds through the typed API client, `tar | nc` pipelines between local directories, latency
 * samplers. Every process and temp dir goes through bench/procs.ts, so a failure or a signal
 * still cleans up.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ApiClient, type Compression, type SeedView } from '../client/api.js';
import { createLeanOps, type LeanOps } from './lean-ops.js';
import { childTimesFromTail, cpuTimes, makeTemp, stealSeconds, procStatusKiB, removeTemp, spawnTracked, stopTracked, timedPipeline, type CpuTimes, type PipeCpu, type Tracked } from './procs.js';
import type { RssTriple, SeedRun } from './results.js';

/** SEEDWIRE_BENCH_DATA_CONNECTIONS=0: agents keep seed bytes on their control links, as before data connections (before/after runs in one build). */
const DATA_CONNECTIONS = process.env['SEEDWIRE_BENCH_DATA_CONNECTIONS'] !== '0';
import { latencyStats, round, type Interval, type LatencyStats } from './targets.js';
import { NODE_FLAGS } from '../shared/node-flags.js';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
/**
 * The agent the bench runs: the one-file bundle (`make dist`), which is what a fleet installs and
 * the systemd unit starts (packaging/systemd/seedwire-agent.service), not dist/agent/main.js with
 * node_modules (about 8 MiB more at rest: docs/performance.md, "The agent the bench runs").
 */
export const AGENT_ENTRY = join(ROOT, 'dist/seedwire-agent.mjs');

/** Throws, saying how to build them, unless the controller (dist/) and the agent's bundle exist. */
export function requireBuilt(): void {
  if (!existsSync(join(ROOT, 'dist/server-stub/main.js')) || !existsSync(AGENT_ENTRY)) {
    throw new Error('dist/ is not built: run `make build dist` (or `npm run build && node scripts/build-dist.mjs`) first');
  }
}
export const MB = 1e6;
export const MiB = 2 ** 20;

export function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** The environment for children: no seedwire variables leaking in from the caller. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('SEEDWIRE_')) delete env[key];
  return env;
}

export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export const kibToMiB = (k: number | null): number | null => (k === null ? null : round(k / 1024, 1));

export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

export function freePort(): Promise<number> {
  return new Promise<number>((resolveFn, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolveFn(port));
    });
  });
}

export async function runShell(name: string, script: string, timeoutMs = 120_000): Promise<Tracked> {
  const t = spawnTracked(name, 'bash', ['-c', script], { env: childEnv() });
  const timer = setTimeout(() => void stopTracked(t, 1_000), timeoutMs); // stopTracked only resolves
  const { code, signal } = await t.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${name}: exit ${code ?? signal}: ${t.tail.slice(-5).join(' | ')}`);
  return t;
}

/** runShell, and the CPU the script's children used (bash's `times`; null if it did not print). */
export async function runTimedShell(name: string, script: string, timeoutMs = 120_000): Promise<CpuTimes | null> {
  const t = await runShell(name, timedPipeline(script), timeoutMs);
  await stdoutClosed(t);
  return childTimesFromTail(t.tail);
}

/** Resolves once `t`'s stdout has closed: 'exit' can come before its last line is read. */
function stdoutClosed(t: Tracked): Promise<void> {
  return new Promise<void>((resolve) => (!t.child.stdout || t.child.stdout.closed ? resolve() : t.child.stdout.once('close', () => resolve())));
}

/** Dirty and under-writeback page cache, KiB (/proc/meminfo). */
function unwrittenKiB(): number {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? 0);
  return field('Dirty') + field('Writeback');
}

/** What `quietDisk` waits for: less than this left to write back. */
const QUIET_DISK_KIB = 64 * 1024;

/**
 * Starts a timed copy (a `tar | nc`, a seed) or a section on a quiet disk: `sync`, then a wait
 * until less than 64 MiB of the page cache is dirty or being written. Without it the copy before
 * (gigabytes left dirty by a `tar | nc`, a removed target's freed blocks) was still being written
 * back during the next one, in its time and on its CPU (docs/performance.md, "A quiet disk before
 * each timed copy"). Not part of any figure. A disk that is still writing after a minute is
 * logged and the run goes on: an unattended bench does not stop for it.
 */
export async function quietDisk(): Promise<void> {
  const t0 = performance.now();
  try {
    await runShell('sync', 'sync', 300_000);
    await waitUntil('the page cache to be written back', 60_000, () => Promise.resolve(unwrittenKiB() < QUIET_DISK_KIB), 100);
  } catch (error) {
    log(`  disk not quiet (${Math.round(unwrittenKiB() / 1024)} MiB left to write back): ${error instanceof Error ? error.message : String(error)}; going on`);
    return;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (seconds >= 1) log(`  disk quiet after ${seconds.toFixed(1)} s`);
}

export async function measureLatency(n: number, warmup: number, once: () => Promise<void>): Promise<LatencyStats> {
  for (let i = 0; i < warmup; i += 1) await once();
  const samples: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  return latencyStats(samples);
}

// ---- tar | nc ---------------------------------------------------------------------------------

/**
 * `plain`: `tar | nc`; `zstd`: `tar | zstd -1 | nc | zstd -d | tar`; `relay`: `tar | nc` into a
 * `socat` relay on the same machine that forwards to `nc | tar` (the shape of a relayed seed:
 * one more socket hop in each direction, what every byte through the controller also pays).
 */
export type PipeKind = 'plain' | 'zstd' | 'relay';

/** One pipeline's copy: its interval, and the CPU each end's processes used (from bash's `times`; null if not printed). */
export interface PipeRun extends Interval {
  cpu: PipeCpu;
  /** CPU seconds the hypervisor took from the machine during the copy (stealSeconds), or null. */
  stealSeconds: number | null;
}

/** Seconds stolen since `before` (a stealSeconds() reading), or null. */
function stolenSince(before: number | null): number | null {
  const now = stealSeconds();
  return before === null || now === null ? null : round(now - before, 2);
}

async function listening(port: number): Promise<boolean> {
  return execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).includes('LISTEN');
}

/**
 * Copies each source directory into its target through its own `tar | nc` pipeline over
 * loopback, all at once (receivers listen first, then every sender starts). Returns each copy's
 * interval on performance.now()'s clock.
 */
export async function tarPipes(kind: PipeKind, copies: ReadonlyArray<{ source: string; target: string }>, timeoutMs: number): Promise<PipeRun[]> {
  const receivers: Tracked[] = [];
  const relays: Tracked[] = [];
  const ports: number[] = [];
  try {
    for (const [i, { target }] of copies.entries()) {
      mkdirSync(target, { recursive: true });
      const port = await freePort();
      const unpack = kind === 'zstd' ? `zstd -d -q -c | tar -x -C ${shq(target)}` : `tar -x -C ${shq(target)}`;
      receivers.push(spawnTracked(`nc-listen-${i}`, 'bash', ['-c', timedPipeline(`nc -l 127.0.0.1 ${port} </dev/null | ${unpack}`)], { env: childEnv() }));
      await waitUntil(`nc to listen on ${port}`, 10_000, () => listening(port), 20);
      if (kind !== 'relay') {
        ports.push(port);
        continue;
      }
      const relayPort = await freePort();
      relays.push(spawnTracked(`relay-${i}`, 'socat', [`TCP-LISTEN:${relayPort},bind=127.0.0.1,reuseaddr`, `TCP:127.0.0.1:${port}`], { env: childEnv() }));
      await waitUntil(`socat to listen on ${relayPort}`, 10_000, () => listening(relayPort), 20);
      ports.push(relayPort);
    }
  } catch (error) {
    await Promise.allSettled([...receivers, ...relays].map((r) => stopTracked(r, 1_000)));
    throw error;
  }
  await quietDisk();
  const runs = copies.map(async ({ source }, i) => {
    const pack = kind === 'zstd' ? `tar -c -C ${shq(source)} . | zstd -1 -q -c` : `tar -c -C ${shq(source)} .`;
    const startMs = performance.now();
    const stealBefore = stealSeconds();
    const sender = spawnTracked(`nc-send-${i}`, 'bash', ['-c', timedPipeline(`${pack} | nc -N 127.0.0.1 ${ports[i]}`)], { env: childEnv() });
    const receiver = receivers[i]!;
    const timer = setTimeout(() => void Promise.all([stopTracked(sender, 1_000), stopTracked(receiver, 1_000)]), timeoutMs); // only resolves
    const [s, r] = await Promise.all([sender.exited, receiver.exited]);
    clearTimeout(timer);
    const endMs = performance.now();
    const stolen = stolenSince(stealBefore);
    if (s.code !== 0 || r.code !== 0) {
      throw new Error(`tar|${kind === 'zstd' ? 'zstd|' : ''}nc ${i} failed: sender ${s.code ?? s.signal}, receiver ${r.code ?? r.signal}: ${[...sender.tail, ...receiver.tail].slice(-5).join(' | ')}`);
    }
    await Promise.all([stdoutClosed(sender), stdoutClosed(receiver)]);
    return { startMs, endMs, cpu: { sender: childTimesFromTail(sender.tail), receiver: childTimesFromTail(receiver.tail) }, stealSeconds: stolen };
  });
  const settled = await Promise.allSettled(runs);
  await Promise.allSettled(relays.map((r) => stopTracked(r, 1_000)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<PipeRun>).value);
}

// ---- controller and agents --------------------------------------------------------------------

export interface ControllerProc {
  proc: Tracked;
  url: string;
  wsUrl: string;
  client: ApiClient;
  /** For timed operations (lean-ops.ts). */
  ops: LeanOps;
  agentToken: string;
}

/** SEEDWIRE_BENCH_PROBE=DIR: every controller and agent the bench starts loads bench/probe.mjs, writing into DIR. */
const PROBE_DIR = process.env['SEEDWIRE_BENCH_PROBE'] ? resolve(process.env['SEEDWIRE_BENCH_PROBE']) : null;

export function probeArgs(name: string): string[] {
  if (!PROBE_DIR) return [];
  const url = pathToFileURL(join(ROOT, 'bench/probe.mjs'));
  url.search = new URLSearchParams({ dir: PROBE_DIR, name }).toString();
  return ['--import', url.href];
}

function profileArgs(profileDir: string | null): string[] {
  if (!profileDir) return [];
  mkdirSync(profileDir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
}

export async function startController(name: string, profileDir: string | null = null): Promise<ControllerProc> {
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const dataDir = makeTemp(`seedwire-benchrun-${name}-`);
  // Tokens by file, as the README recommends (flags would show in ps and draw a warning).
  writeFileSync(join(dataDir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dataDir, 'admin-token'), adminToken, { mode: 0o600 });
  const proc = spawnTracked(
    name,
    process.execPath,
    [
      ...NODE_FLAGS,
      ...profileArgs(profileDir),
      ...probeArgs(name),
      join(ROOT, 'dist/server-stub/main.js'),
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--agent-token-file',
      join(dataDir, 'agent-token'),
      '--admin-token-file',
      join(dataDir, 'admin-token'),
    ],
    { cwd: ROOT, env: childEnv(), logTo: join(dataDir, 'controller.log') },
  );
  const record = await proc.waitForRecord((r) => r['msg'] === 'listening', 20_000);
  const url = String(record['url']);
  const wsUrl = typeof record['wsUrl'] === 'string' ? record['wsUrl'] : `${url.replace(/^http/, 'ws')}/agent`;
  return { proc, url, wsUrl, agentToken, client: new ApiClient({ baseUrl: url, token: adminToken }), ops: createLeanOps(url, adminToken) };
}

export function startAgent(name: string, config: Record<string, unknown>, profileDir: string | null = null): Tracked {
  const dir = makeTemp(`seedwire-benchrun-${name}-`);
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ stateDir: join(dir, 'state'), ...config, advanced: { startupJitterMs: 0, reconnectBaseMs: 100, reconnectCapMs: 1_000, dataConnections: DATA_CONNECTIONS } }, null, 2));
  return spawnTracked(name, process.execPath, [...NODE_FLAGS, ...profileArgs(profileDir), ...probeArgs(name), AGENT_ENTRY, '--config', file], { cwd: ROOT, env: childEnv(), logTo: join(dir, 'agent.log') });
}

/** A mysql section whose "service" is a flag file outside the datadir: running while it exists. */
export function fakeMysql(datadir: string, flag: string): Record<string, unknown> {
  return {
    datadir,
    statusCommand: `test -e ${shq(flag)}`,
    startCommand: `touch ${shq(flag)}`,
    stopCommand: `rm -f ${shq(flag)}`,
    commandTimeoutSeconds: 10,
  };
}

export async function waitForAgents(client: ApiClient, ids: string[], needFacts: boolean): Promise<void> {
  await waitUntil(`agents ${ids.join(', ')} to connect`, 30_000, async () => {
    const agents = await client.agents().catch(() => null);
    if (!agents) return null;
    return ids.every((id) => agents.some((a) => a.id === id && a.connected));
  });
  if (!needFacts) return;
  for (const id of ids) {
    await waitUntil(`facts of ${id}`, 30_000, async () => {
      const agent = await client.agent(id).catch(() => null);
      return agent?.facts?.datadir ? true : null;
    });
  }
}

export interface Pair {
  sourceId: string;
  targetId: string;
  source: Tracked;
  target: Tracked;
  targetDir: string;
}

/** One controller and `sources.length` source/target agent pairs; each target writes its own directory. */
export interface SeedWorld {
  ctl: ControllerProc;
  pairs: Pair[];
  /** controller, then source-N / target-N (or source / target for a single pair). */
  procs: Record<string, Tracked>;
  /** VmHWM (peak RSS) of the controller and of the agents of pair `i`. */
  peakRss(i?: number): RssTriple;
  currentRss(i?: number): RssTriple;
  close(): Promise<void>;
}

/**
 * The source "MySQL" of each pair is a flag file outside the datadirs (status `test -e FLAG`,
 * start `touch`, stop `rm -f`), so a cold seed's stop, restart and status polls all succeed
 * without a server, and several sources can read the same dataset.
 */
export async function startSeedWorld(name: string, sources: string[], profileDir: string | null = null): Promise<SeedWorld> {
  const ctl = await startController(`${name}-controller`, profileDir);
  const work = makeTemp(`seedwire-benchrun-${name}-`);
  const pairs: Pair[] = [];
  const procs: Record<string, Tracked> = { controller: ctl.proc };
  try {
    for (const [i, sourceDir] of sources.entries()) {
      const suffix = sources.length === 1 ? '' : `-${i + 1}`;
      const targetDir = join(work, `target${suffix}`);
      mkdirSync(targetDir);
      const sourceFlag = join(work, `source${suffix}-mysql-running`);
      writeFileSync(sourceFlag, ''); // the source "runs" until the cold seed stops it
      const sourceId = `${name}-source${suffix}`;
      const targetId = `${name}-target${suffix}`;
      const source = startAgent(sourceId, { controller: ctl.wsUrl, token: ctl.agentToken, id: sourceId, mysql: fakeMysql(sourceDir, sourceFlag) }, profileDir);
      const target = startAgent(targetId, { controller: ctl.wsUrl, token: ctl.agentToken, id: targetId, mysql: fakeMysql(targetDir, join(work, `target${suffix}-mysql-running`)) }, profileDir);
      procs[`source${suffix}`] = source;
      procs[`target${suffix}`] = target;
      pairs.push({ sourceId, targetId, source, target, targetDir });
    }
    await waitForAgents(ctl.client, pairs.flatMap((p) => [p.sourceId, p.targetId]), true);
  } catch (error) {
    await Promise.allSettled(Object.values(procs).map((p) => stopTracked(p)));
    removeTemp(work);
    throw error;
  }
  const triple = (field: 'VmHWM' | 'VmRSS', i: number): RssTriple => ({
    controller: kibToMiB(procStatusKiB(ctl.proc.pid, field)),
    source: kibToMiB(procStatusKiB(pairs[i]!.source.pid, field)),
    target: kibToMiB(procStatusKiB(pairs[i]!.target.pid, field)),
  });
  return {
    ctl,
    pairs,
    procs,
    peakRss: (i = 0) => triple('VmHWM', i),
    currentRss: (i = 0) => triple('VmRSS', i),
    async close() {
      await Promise.allSettled(pairs.flatMap((p) => [stopTracked(p.source), stopTracked(p.target)]));
      await stopTracked(ctl.proc);
      removeTemp(work);
    },
  };
}

// ---- seeds ------------------------------------------------------------------------------------

export interface SeedOptions {
  label: string;
  compression: Compression;
  lanes: number;
  timeoutMs: number;
  /** Called with each polled view (e.g. to know when the transfer stage runs). */
  onPoll?: (seed: SeedView) => void;
}

export interface StartedSeed {
  id: string;
  postedAt: number;
  cpuBefore: Record<string, CpuTimes | null>;
  stealBefore: number | null;
}

/** Each process's CPU times now (one read of /proc/PID/stat each). */
function readCpu(procs: Record<string, Tracked>): Record<string, CpuTimes | null> {
  return Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuTimes(p.pid)]));
}

/** Starts a seed; the caller makes the disk quiet first (quietDisk), once for seeds started together. */
export async function startSeed(client: ApiClient, procs: Record<string, Tracked>, pair: Pair, options: SeedOptions): Promise<StartedSeed> {
  const cpuBefore = readCpu(procs);
  const postedAt = Date.now();
  const created = await client.createSeed({ source: pair.sourceId, target: pair.targetId, method: 'cold', compression: options.compression, startTarget: false, lanes: options.lanes });
  log(`seed ${created.id} (${options.label}, ${options.compression}, lanes ${options.lanes}) started`);
  return { id: created.id, postedAt, cpuBefore, stealBefore: stealSeconds() };
}

const TERMINAL = new Set(['succeeded', 'failed', 'aborted']);

/** Polls a seed to its end (aborting it after the timeout) and describes the run. */
export async function awaitSeed(client: ApiClient, procs: Record<string, Tracked>, started: StartedSeed, options: SeedOptions): Promise<SeedRun> {
  const { id } = started;
  let seed: SeedView;
  let lastLog = 0;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    seed = await client.seed(id);
    options.onPoll?.(seed);
    if (TERMINAL.has(seed.state)) break;
    if (Date.now() - lastLog > 5_000) {
      lastLog = Date.now();
      const rate = typeof seed.bytesPerSec === 'number' ? `${(seed.bytesPerSec / MB).toFixed(0)} MB/s` : '-';
      log(`  ${id} ${seed.stage ?? '?'}: ${((seed.bytesDone ?? 0) / MiB).toFixed(0)} / ${((seed.bytesTotal ?? 0) / MiB).toFixed(0)} MiB, ${rate}`);
    }
    if (Date.now() > deadline) {
      log(`seed ${id} did not finish within ${options.timeoutMs / 1000} s; aborting it`);
      await client.abortSeed(id).catch(() => undefined);
      seed = await client.seed(id);
      seed.error ??= { code: 'BENCH_TIMEOUT', message: `not finished after ${options.timeoutMs / 1000} s (stage ${seed.stage})` };
      break;
    }
    await delay(200);
  }
  const cpuAfter = readCpu(procs);
  // Seconds each process spent during the seed: `part` picks user + system, or system alone.
  const spent = (part: (t: CpuTimes) => number): Record<string, number | null> =>
    Object.fromEntries(
      Object.keys(procs).map((k) => {
        const before = started.cpuBefore[k];
        const after = cpuAfter[k];
        return [k, before && after ? round(part(after) - part(before), 2) : null];
      }),
    );
  const seconds = (s: { startedAt: string | null; endedAt: string | null }): number | null =>
    s.startedAt && s.endedAt ? (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000 : null;
  const stages = (seed.stages ?? []).map((s) => ({ name: s.name, state: s.state, seconds: seconds(s), message: s.message ?? null }));
  const transfer = (seed.stages ?? []).find((s) => s.name === 'transfer');
  const transferOk = transfer?.state === 'succeeded' && transfer.startedAt !== null && transfer.endedAt !== null;
  // The lanes feature may report what the transfer used; until then only the request is known.
  const effectiveLanes = 'lanes' in seed && typeof seed.lanes === 'number' ? seed.lanes : null;
  return {
    id,
    label: options.label,
    compression: options.compression,
    lanes: options.lanes,
    effectiveLanes,
    state: seed.state,
    error: seed.error ?? null,
    seedSeconds: seed.endedAt ? (Date.parse(seed.endedAt) - started.postedAt) / 1000 : null,
    transferSeconds: transferOk ? seconds(transfer) : null,
    transferStartMs: transferOk ? Date.parse(transfer.startedAt!) : null,
    transferEndMs: transferOk ? Date.parse(transfer.endedAt!) : null,
    stages,
    cpuSeconds: spent((t) => t.user + t.sys),
    cpuSysSeconds: spent((t) => t.sys),
    stealSeconds: stolenSince(started.stealBefore),
    verified: null,
  };
}

export async function runSeed(client: ApiClient, procs: Record<string, Tracked>, pair: Pair, options: SeedOptions): Promise<SeedRun> {
  await quietDisk();
  return awaitSeed(client, procs, await startSeed(client, procs, pair, options), options);
}
