/**
 * `make bench` (docs/performance.md): one run on one dataset, a table on stdout and
 * bench/results/latest.json.
 *
 *  1. seed throughput through the controller (real controller + two real agents, cold seed,
 *     compression none, then zstd) against `tar | nc` between two local directories;
 *  2. peak RSS (VmHWM) of the controller and both agents during the seed;
 *  3. operation round-trip latency: sequential `hostname` ops over HTTP, plus raw hub calls;
 *  4. idle agents per controller: N protocol-speaking WebSocket clients against a fresh controller.
 *
 * Env: SEEDWIRE_BENCH_BYTES (dataset size, default 1 GiB; accepts 512M, 2G...),
 * SEEDWIRE_BENCH_IDLE (idle agents, default 500), SEEDWIRE_BENCH_OPS (latency samples, default 500),
 * SEEDWIRE_BENCH_SEED_TIMEOUT (seconds per seed, default 150), SEEDWIRE_BENCH_PROFILE=DIR (run the
 * seed phase's controller and agents with --cpu-prof into DIR; summarise with
 * bench/profile-summary.ts), SEEDWIRE_BENCH_SEEDS (which seeds: default none,zstd).
 * The source and target "MySQL" are flag files outside the datadirs (status `test -e FLAG`,
 * start `touch`, stop `rm -f`), so the cold seed's stop, restart and status polls all succeed.
 * Needs a built dist/ (the Makefile target builds it first).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient, type Compression, type SeedView } from '../client/api.js';
import { compareTrees, ensureDataset, type Dataset } from './dataset.js';
import { fleetRows, runFleetBench, type FleetResults } from './fleet.js';
import {
  cleanupAll,
  cleanupAllSync,
  cpuSeconds,
  makeTemp,
  nofileLimits,
  procStatusKiB,
  removeTemp,
  resetPeakRss,
  spawnTracked,
  stopTracked,
  type Tracked,
} from './procs.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const MB = 1e6;
const MiB = 2 ** 20;

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!match) throw new Error(`SEEDWIRE_BENCH_BYTES: expected a size such as 1073741824, 512M or 1G, got '${text}'`);
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.floor(Number(match[1]) * unit);
}

const BYTES = parseSize(process.env['SEEDWIRE_BENCH_BYTES'] || String(2 ** 30));
const IDLE_REQUESTED = Number(process.env['SEEDWIRE_BENCH_IDLE'] || 500);
const OPS = Number(process.env['SEEDWIRE_BENCH_OPS'] || 500);
const SEED_TIMEOUT_MS = Number(process.env['SEEDWIRE_BENCH_SEED_TIMEOUT'] || 150) * 1000;
/** Which seeds to run (comma list of none, zstd); profiling one alone keeps its profile clean. */
const SEEDS = new Set((process.env['SEEDWIRE_BENCH_SEEDS'] || 'none,zstd').split(',').map((s) => s.trim()));
/** When set, the seed phase's controller and agents run with --cpu-prof into this directory. */
const PROFILE_DIR = process.env['SEEDWIRE_BENCH_PROFILE'] ? resolve(process.env['SEEDWIRE_BENCH_PROFILE']) : null;

function nodeArgs(profile: boolean): string[] {
  if (!profile || !PROFILE_DIR) return [];
  mkdirSync(PROFILE_DIR, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`];
}

const log = (line: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

/** The environment for children: no seedwire variables leaking in from the caller. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('SEEDWIRE_')) delete env[key];
  return env;
}

// ---- results ----------------------------------------------------------------------------------

interface SeedRun {
  id: string | null;
  compression: string;
  state: string;
  error: { code: string; message: string } | null;
  seedSeconds: number | null;
  transferSeconds: number | null;
  stages: Array<{ name: string; state: string; seconds: number | null; message: string | null }>;
  cpuSeconds: Record<string, number | null>;
  verified: string | null;
}

const results = {
  at: new Date().toISOString(),
  machine: {
    cpus: cpus().length,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    // extras: other work on the machine skews every number; recorded at start and at the end
    loadAvgStart: loadavg().map((l) => Math.round(l * 100) / 100),
    loadAvgEnd: null as number[] | null,
  },
  dataset: { bytes: 0, files: 0 },
  seed: {
    tarNcMBps: null as number | null,
    seedwireMBps: null as number | null,
    ratio: null as number | null,
    zstdMBps: null as number | null,
    seedSeconds: null as number | null,
    transferSeconds: null as number | null,
    // extras
    tarNcSeconds: null as number | null,
    tarNcSyncMBps: null as number | null,
    seedwireWholeMBps: null as number | null,
    zstdSeedSeconds: null as number | null,
    zstdTransferSeconds: null as number | null,
    runs: [] as SeedRun[],
  },
  rss: {
    controllerMiB: null as number | null,
    sourceAgentMiB: null as number | null,
    targetAgentMiB: null as number | null,
    // extras: RSS just before the first seed, and the peak during the zstd seed alone
    beforeSeed: null as null | Record<string, number | null>,
    zstdSeed: null as null | Record<string, number | null>,
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
  },
  idle: {
    agents: 0,
    connectSeconds: null as number | null,
    controllerRssDeltaMiB: null as number | null,
    perAgentKiB: null as number | null,
    allListed: null as boolean | null,
    // extras
    requested: IDLE_REQUESTED,
    controllerRssBeforeMiB: null as number | null,
    controllerRssAfterMiB: null as number | null,
    listSeconds: null as number | null,
    /** Connection attempts the controller's admission pacing answered 503 (each dialled again). */
    paced: null as number | null,
    note: null as string | null,
  },
  /** bench/fleet.ts: the controller with 1,000 and 10,000 simulated agents. */
  fleet: null as FleetResults | null,
  errors: [] as string[],
};

function fail(phase: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  results.errors.push(`${phase}: ${message}`);
  log(`${phase} FAILED: ${message}`);
}

const round = (n: number | null, digits = 1): number | null => (n === null || !Number.isFinite(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits);
const kibToMiB = (k: number | null): number | null => (k === null ? null : round(k / 1024, 1));

// ---- small helpers ----------------------------------------------------------------------------

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

function freePort(): Promise<number> {
  return new Promise<number>((resolveFn, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolveFn(port));
    });
  });
}

async function runShell(name: string, script: string, timeoutMs = 120_000): Promise<void> {
  const t = spawnTracked(name, 'bash', ['-c', script], { env: childEnv() });
  const timer = setTimeout(() => void stopTracked(t, 1_000), timeoutMs);
  const { code, signal } = await t.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${name}: exit ${code ?? signal}: ${t.tail.slice(-5).join(' | ')}`);
}

interface LatencyStats {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** p50 of the first and of the last tenth of the samples: does latency drift as calls accumulate? */
  firstTenthP50Ms: number;
  lastTenthP50Ms: number;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

function stats(samples: number[]): LatencyStats {
  const r = (n: number): number => Math.round(n * 100) / 100;
  const tenth = Math.max(1, Math.floor(samples.length / 10));
  return {
    n: samples.length,
    p50Ms: r(percentile(samples, 0.5)),
    p99Ms: r(percentile(samples, 0.99)),
    maxMs: r(Math.max(...samples)),
    meanMs: r(samples.reduce((a, b) => a + b, 0) / samples.length),
    firstTenthP50Ms: r(percentile(samples.slice(0, tenth), 0.5)),
    lastTenthP50Ms: r(percentile(samples.slice(-tenth), 0.5)),
  };
}

async function measureLatency(n: number, warmup: number, once: () => Promise<void>): Promise<LatencyStats> {
  for (let i = 0; i < warmup; i += 1) await once();
  const samples: number[] = [];
  for (let i = 0; i < n; i += 1) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  return stats(samples);
}

// ---- processes --------------------------------------------------------------------------------

interface ControllerProc {
  proc: Tracked;
  url: string;
  wsUrl: string;
  client: ApiClient;
}

async function startController(name: string, agentToken: string, adminToken: string, profile = false): Promise<ControllerProc> {
  const dataDir = makeTemp(`seedwire-benchrun-${name}-`);
  // Tokens by file, as the README recommends (flags would show in ps and draw a warning).
  writeFileSync(join(dataDir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dataDir, 'admin-token'), adminToken, { mode: 0o600 });
  const proc = spawnTracked(
    name,
    process.execPath,
    [
      ...nodeArgs(profile),
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
    { cwd: ROOT, env: childEnv() },
  );
  const listening = await proc.waitForRecord((r) => r['msg'] === 'listening', 20_000);
  const url = String(listening['url']);
  const wsUrl = typeof listening['wsUrl'] === 'string' ? listening['wsUrl'] : `${url.replace(/^http/, 'ws')}/agent`;
  return { proc, url, wsUrl, client: new ApiClient({ baseUrl: url, token: adminToken }) };
}

function startAgent(name: string, config: Record<string, unknown>, profile = false): Tracked {
  const dir = makeTemp(`seedwire-benchrun-${name}-`);
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ stateDir: join(dir, 'state'), ...config, advanced: { startupJitterMs: 0, reconnectBaseMs: 100, reconnectCapMs: 1_000 } }, null, 2));
  return spawnTracked(name, process.execPath, [...nodeArgs(profile), join(ROOT, 'dist/agent/main.js'), '--config', file], { cwd: ROOT, env: childEnv() });
}

const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** A mysql section whose "service" is a flag file outside the datadir: running while it exists. */
function fakeMysql(datadir: string, flag: string): Record<string, unknown> {
  return {
    datadir,
    statusCommand: `test -e ${shq(flag)}`,
    startCommand: `touch ${shq(flag)}`,
    stopCommand: `rm -f ${shq(flag)}`,
    commandTimeoutSeconds: 10,
  };
}

async function waitForAgents(client: ApiClient, ids: string[], needFacts: boolean): Promise<void> {
  await waitUntil(`agents ${ids.join(', ')} to connect`, 20_000, async () => {
    const agents = await client.agents().catch(() => null);
    if (!agents) return null;
    return ids.every((id) => agents.some((a) => a.id === id && a.connected));
  });
  if (!needFacts) return;
  for (const id of ids) {
    await waitUntil(`facts of ${id}`, 20_000, async () => {
      const agent = await client.agent(id).catch(() => null);
      return agent?.facts?.datadir ? true : null;
    });
  }
}

// ---- 1. tar | nc ------------------------------------------------------------------------------

async function tarNc(dataset: Dataset, work: string): Promise<{ seconds: number; syncSeconds: number }> {
  const dst = join(work, 'tarnc-dst');
  mkdirSync(dst);
  const port = await freePort();
  const receiver = spawnTracked('nc-listen', 'bash', ['-c', `nc -l 127.0.0.1 ${port} </dev/null | tar -x -C ${shq(dst)}`], { env: childEnv() });
  await waitUntil('nc to listen', 10_000, async () => {
    return execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).includes('LISTEN');
  }, 20);
  const t0 = performance.now();
  const sender = spawnTracked('nc-send', 'bash', ['-c', `tar -c -C ${shq(dataset.dir)} . | nc -N 127.0.0.1 ${port}`], { env: childEnv() });
  const [s, r] = await Promise.all([sender.exited, receiver.exited]);
  const seconds = (performance.now() - t0) / 1000;
  if (s.code !== 0 || r.code !== 0) throw new Error(`tar|nc failed: sender ${s.code ?? s.signal}, receiver ${r.code ?? r.signal}: ${[...sender.tail, ...receiver.tail].slice(-5).join(' | ')}`);
  const check = await compareTrees(dataset.dir, dst, new Set());
  if (check.problem) throw new Error(`tar|nc copy differs: ${check.problem}`);
  // What seedwire's receiver also does: fdatasync every file it wrote.
  const t1 = performance.now();
  await runShell('sync', `find ${shq(dst)} -type f -print0 | xargs -0 sync --data`);
  const syncSeconds = (performance.now() - t1) / 1000;
  removeTemp(dst);
  return { seconds, syncSeconds };
}

// ---- 2. seeds through the controller ----------------------------------------------------------

async function runSeed(client: ApiClient, procs: Record<string, Tracked>, source: string, target: string, compression: Compression): Promise<SeedRun> {
  const cpuBefore = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSeconds(p.pid)]));
  const postedAt = Date.now();
  const created = await client.createSeed({ source, target, method: 'cold', compression, startTarget: false });
  const id = created.id;
  log(`seed ${id} (${compression}) started`);
  let seed: SeedView;
  let lastLog = 0;
  const deadline = Date.now() + SEED_TIMEOUT_MS;
  for (;;) {
    seed = await client.seed(id);
    if (['succeeded', 'failed', 'aborted'].includes(seed.state)) break;
    if (Date.now() - lastLog > 5_000) {
      lastLog = Date.now();
      const rate = typeof seed.bytesPerSec === 'number' ? `${(seed.bytesPerSec / MB).toFixed(0)} MB/s` : '-';
      log(`  ${seed.stage ?? '?'}: ${((seed.bytesDone ?? 0) / MiB).toFixed(0)} / ${((seed.bytesTotal ?? 0) / MiB).toFixed(0)} MiB, ${rate}`);
    }
    if (Date.now() > deadline) {
      log(`seed ${id} did not finish within ${SEED_TIMEOUT_MS / 1000} s; aborting it`);
      await client.abortSeed(id).catch(() => undefined);
      seed = await client.seed(id);
      seed.error ??= { code: 'BENCH_TIMEOUT', message: `not finished after ${SEED_TIMEOUT_MS / 1000} s (stage ${seed.stage})` };
      break;
    }
    await delay(200);
  }
  const cpu = Object.fromEntries(
    Object.entries(procs).map(([k, p]) => {
      const after = cpuSeconds(p.pid);
      const before = cpuBefore[k];
      return [k, after === null || before === null || before === undefined ? null : round(after - before, 2)];
    }),
  );
  const seconds = (s: { startedAt: string | null; endedAt: string | null }): number | null =>
    s.startedAt && s.endedAt ? (Date.parse(s.endedAt) - Date.parse(s.startedAt)) / 1000 : null;
  const stages = (seed.stages ?? []).map((s) => ({ name: s.name, state: s.state, seconds: seconds(s), message: s.message ?? null }));
  const transfer = stages.find((s) => s.name === 'transfer');
  return {
    id,
    compression,
    state: seed.state,
    error: seed.error ?? null,
    seedSeconds: seed.endedAt ? (Date.parse(seed.endedAt) - postedAt) / 1000 : null,
    transferSeconds: transfer?.state === 'succeeded' ? transfer.seconds : null,
    stages,
    cpuSeconds: cpu,
    verified: null,
  };
}

async function seedwirePhase(dataset: Dataset): Promise<void> {
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const ctl = await startController('controller', agentToken, adminToken, true);
  log(`controller at ${ctl.url} (pid ${ctl.proc.pid})`);
  const work = makeTemp('seedwire-benchrun-seed-');
  const targetDir = join(work, 'target-datadir');
  mkdirSync(targetDir);
  const sourceFlag = join(work, 'source-mysql-running');
  writeFileSync(sourceFlag, ''); // the source "runs" until the cold seed stops it
  const source = startAgent('source-agent', { controller: ctl.wsUrl, token: agentToken, id: 'bench-source', mysql: fakeMysql(dataset.dir, sourceFlag) }, true);
  const target = startAgent('target-agent', { controller: ctl.wsUrl, token: agentToken, id: 'bench-target', mysql: fakeMysql(targetDir, join(work, 'target-mysql-running')) }, true);
  const procs = { controller: ctl.proc, source, target };
  try {
    await waitForAgents(ctl.client, ['bench-source', 'bench-target'], true);
    results.rss.beforeSeed = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, kibToMiB(procStatusKiB(p.pid, 'VmRSS'))]));

    // -- compression none
    if (SEEDS.has('none')) {
      try {
        const run = await runSeed(ctl.client, procs, 'bench-source', 'bench-target', 'none');
        results.seed.runs.push(run);
        results.rss.controllerMiB = kibToMiB(procStatusKiB(ctl.proc.pid, 'VmHWM'));
        results.rss.sourceAgentMiB = kibToMiB(procStatusKiB(source.pid, 'VmHWM'));
        results.rss.targetAgentMiB = kibToMiB(procStatusKiB(target.pid, 'VmHWM'));
        if (run.state !== 'succeeded') throw new Error(`seed ${run.id} ${run.state}: ${run.error?.code}: ${run.error?.message}`);
        const check = await compareTrees(dataset.dir, targetDir, new Set(['.seedwire-incomplete']));
        run.verified = check.problem ?? `ok: ${check.files} files, ${check.bytes} bytes, sampled SHA-256 equal`;
        if (check.problem) throw new Error(`target differs from source: ${check.problem}`);
        results.seed.seedSeconds = round(run.seedSeconds, 2);
        results.seed.transferSeconds = round(run.transferSeconds, 2);
        results.seed.seedwireMBps = run.transferSeconds ? round(dataset.bytes / MB / run.transferSeconds) : null;
        results.seed.seedwireWholeMBps = run.seedSeconds ? round(dataset.bytes / MB / run.seedSeconds) : null;
      } catch (error) {
        fail('seed (none)', error);
      }
    }

    // -- compression zstd (peak RSS of this seed alone, when the kernel lets us reset VmHWM)
    if (SEEDS.has('zstd')) {
      try {
        const reset = Object.values(procs).every((p) => resetPeakRss(p.pid));
        const run = await runSeed(ctl.client, procs, 'bench-source', 'bench-target', 'zstd');
        results.seed.runs.push(run);
        if (reset) {
          results.rss.zstdSeed = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, kibToMiB(procStatusKiB(p.pid, 'VmHWM'))]));
        }
        if (run.state !== 'succeeded') throw new Error(`seed ${run.id} ${run.state}: ${run.error?.code}: ${run.error?.message}`);
        const check = await compareTrees(dataset.dir, targetDir, new Set(['.seedwire-incomplete']));
        run.verified = check.problem ?? `ok: ${check.files} files, ${check.bytes} bytes, sampled SHA-256 equal`;
        if (check.problem) throw new Error(`target differs from source: ${check.problem}`);
        results.seed.zstdMBps = run.transferSeconds ? round(dataset.bytes / MB / run.transferSeconds) : null;
        results.seed.zstdSeedSeconds = round(run.seedSeconds, 2);
        results.seed.zstdTransferSeconds = round(run.transferSeconds, 2);
      } catch (error) {
        fail('seed (zstd)', error);
      }
    }

    // -- 3. op round trips over HTTP
    try {
      const lat = await measureLatency(OPS, 20, async () => {
        const operation = await ctl.client.runOp('bench-source', 'hostname', {});
        if (operation.state !== 'succeeded') throw new Error(`hostname op ended ${operation.state}: ${JSON.stringify(operation.error)}`);
      });
      Object.assign(results.latency, lat);
    } catch (error) {
      fail('latency (HTTP)', error);
    }
  } finally {
    await Promise.allSettled([stopTracked(source), stopTracked(target)]);
    await stopTracked(ctl.proc);
    removeTemp(work);
  }
}

// ---- 3b. raw protocol calls (in-process controller, real agent) -------------------------------

async function rawLatencyPhase(): Promise<void> {
  const { createController } = await import('../server-stub/app.js');
  const agentToken = randomBytes(16).toString('hex');
  const dataDir = makeTemp('seedwire-benchrun-inproc-');
  const controller = await createController({ dataDir, adminToken: randomBytes(16).toString('hex'), agentToken });
  const agent = startAgent('raw-agent', { controller: controller.wsUrl, token: agentToken, id: 'bench-raw' });
  try {
    await waitUntil('the raw agent to connect', 20_000, async () => controller.deps.hub.isConnected('bench-raw'));
    results.latency.raw = await measureLatency(OPS, 20, async () => {
      await controller.deps.hub.call('bench-raw', 'hostname', {});
    });
  } finally {
    await stopTracked(agent);
    await controller.close();
    removeTemp(dataDir);
  }
}

// ---- 4. idle agents ---------------------------------------------------------------------------

function ensureNofile(pid: number | 'self', need: number): number {
  const limits = nofileLimits(pid);
  if (!limits) return need;
  if (limits.soft >= need) return need;
  const target = Math.min(need, limits.hard);
  try {
    const who = pid === 'self' ? process.pid : pid;
    execFileSync('prlimit', ['--pid', String(who), `--nofile=${Math.max(need, target)}:${Math.max(need, limits.hard)}`]);
    return need;
  } catch {
    return target;
  }
}

async function idlePhase(): Promise<void> {
  const { TestPeer } = await import('../test/helpers/controller-peer.js');
  let n = IDLE_REQUESTED;
  const margin = 200;
  const selfOk = ensureNofile('self', n + margin);
  if (selfOk < n + margin) {
    n = Math.max(1, selfOk - margin);
    results.idle.note = `open-file limit of the bench process is ${selfOk}; lowered N to ${n}`;
  }
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const ctl = await startController('idle-controller', agentToken, adminToken);
  const peers: Array<InstanceType<typeof TestPeer>> = [];
  try {
    const ctlOk = ensureNofile(ctl.proc.pid, n + margin);
    if (ctlOk < n + margin) {
      n = Math.max(1, ctlOk - margin);
      results.idle.note = `open-file limit of the controller is ${ctlOk}; lowered N to ${n}`;
    }
    // Settle: the first API call loads routes lazily; then read the baseline.
    await ctl.client.agents();
    await delay(1_000);
    const before = procStatusKiB(ctl.proc.pid, 'VmRSS');
    const t0 = performance.now();
    const concurrency = 50;
    let next = 0;
    const connectOne = async (): Promise<void> => {
      while (next < n) {
        const i = next;
        next += 1;
        const agentId = `idle-${String(i).padStart(5, '0')}`;
        // The controller paces new sessions (503 + Retry-After): wait and dial again, as an agent does.
        for (;;) {
          const peer = new TestPeer({ url: ctl.wsUrl, token: agentToken, agentId, hello: { hostname: `${agentId}.bench`, bootId: randomBytes(8).toString('hex'), capabilities: ['exec', 'mysql', 'snapshot', 'seed'] } });
          try {
            await peer.connect();
            peers.push(peer);
            break;
          } catch (error) {
            await peer.close();
            if ((error as { status?: number }).status !== 503) throw error;
            results.idle.paced = (results.idle.paced ?? 0) + 1;
            await delay(250 + Math.random() * 1_000);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, connectOne));
    const connectSeconds = (performance.now() - t0) / 1000;
    await delay(2_000);
    const after = procStatusKiB(ctl.proc.pid, 'VmRSS');
    const t1 = performance.now();
    const listed = await ctl.client.agents();
    const listSeconds = (performance.now() - t1) / 1000;
    const connected = listed.filter((a) => a.id.startsWith('idle-') && a.connected).length;
    results.idle.agents = n;
    results.idle.connectSeconds = round(connectSeconds, 2);
    results.idle.controllerRssBeforeMiB = kibToMiB(before);
    results.idle.controllerRssAfterMiB = kibToMiB(after);
    results.idle.controllerRssDeltaMiB = before !== null && after !== null ? round((after - before) / 1024, 1) : null;
    results.idle.perAgentKiB = before !== null && after !== null ? round((after - before) / n, 1) : null;
    results.idle.allListed = connected === n;
    results.idle.listSeconds = round(listSeconds, 3);
    if (connected !== n) results.idle.note = `${results.idle.note ? `${results.idle.note}; ` : ''}/api/agents lists ${connected} of ${n} as connected`;
  } finally {
    await Promise.allSettled(peers.map((p) => p.close()));
    await stopTracked(ctl.proc);
  }
}

// ---- output -----------------------------------------------------------------------------------

function table(): string {
  const r = results;
  const f = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'n/a' : `${v}${unit}`);
  const rows: Array<[string, string]> = [];
  const section = (title: string): void => void rows.push([`— ${title}`, '']);
  section(`dataset: ${(r.dataset.bytes / MiB).toFixed(0)} MiB in ${r.dataset.files} files; ${r.machine.cpus} CPUs, ${r.machine.memGiB} GiB, node ${r.machine.node}`);
  rows.push(['load average (1 min) start / end', `${r.machine.loadAvgStart[0]} / ${r.machine.loadAvgEnd?.[0] ?? 'n/a'}${(r.machine.loadAvgStart[0] ?? 0) > r.machine.cpus * 0.5 ? '  (busy machine: numbers are noisy)' : ''}`]);
  rows.push(['tar | nc (local dirs)', `${f(r.seed.tarNcMBps, ' MB/s')}  (${f(r.seed.tarNcSeconds, ' s')}; with per-file fdatasync: ${f(r.seed.tarNcSyncMBps, ' MB/s')})`]);
  rows.push(['seedwire transfer, none', `${f(r.seed.seedwireMBps, ' MB/s')}  (${f(r.seed.transferSeconds, ' s')})`]);
  rows.push(['seedwire / tar|nc', f(r.seed.ratio)]);
  rows.push(['seedwire whole seed, none', `${f(r.seed.seedSeconds, ' s')}  (${f(r.seed.seedwireWholeMBps, ' MB/s')} end to end)`]);
  rows.push(['seedwire transfer, zstd', `${f(r.seed.zstdMBps, ' MB/s')}  (${f(r.seed.zstdTransferSeconds, ' s')}; whole seed ${f(r.seed.zstdSeedSeconds, ' s')})`]);
  for (const run of r.seed.runs) {
    const stages = run.stages.map((s) => `${s.name} ${s.seconds === null ? s.state : `${s.seconds.toFixed(2)}s`}`).join(', ');
    rows.push([`  stages (${run.compression})`, stages]);
    const cpu = Object.entries(run.cpuSeconds).map(([k, v]) => `${k} ${v ?? 'n/a'}`).join(', ');
    rows.push([`  CPU s (${run.compression})`, cpu]);
    if (run.state !== 'succeeded') rows.push([`  FAILED (${run.compression})`, `${run.state}: ${run.error?.code}: ${run.error?.message}`]);
    else rows.push([`  verify (${run.compression})`, run.verified ?? 'n/a']);
  }
  section('peak RSS (VmHWM), MiB');
  rows.push(['controller / source / target', `${f(r.rss.controllerMiB)} / ${f(r.rss.sourceAgentMiB)} / ${f(r.rss.targetAgentMiB)}`]);
  if (r.rss.beforeSeed) rows.push(['  RSS before the seed', `${f(r.rss.beforeSeed['controller'])} / ${f(r.rss.beforeSeed['source'])} / ${f(r.rss.beforeSeed['target'])}`]);
  if (r.rss.zstdSeed) rows.push(['  peak during zstd seed', `${f(r.rss.zstdSeed['controller'])} / ${f(r.rss.zstdSeed['source'])} / ${f(r.rss.zstdSeed['target'])}`]);
  section(`op round trip (${r.latency.n} sequential hostname ops)`);
  rows.push(['HTTP → controller → agent', `p50 ${f(r.latency.p50Ms, ' ms')}, p99 ${f(r.latency.p99Ms, ' ms')}, max ${f(r.latency.maxMs, ' ms')}  (p50 first/last tenth ${f(r.latency.firstTenthP50Ms)}/${f(r.latency.lastTenthP50Ms)} ms)`]);
  const raw = r.latency.raw;
  rows.push(['raw hub.call → agent', raw ? `p50 ${raw.p50Ms} ms, p99 ${raw.p99Ms} ms, max ${raw.maxMs} ms  (p50 first/last tenth ${raw.firstTenthP50Ms}/${raw.lastTenthP50Ms} ms)` : 'n/a']);
  section('idle agents on one controller');
  rows.push(['agents connected', `${r.idle.agents}${r.idle.agents !== r.idle.requested ? ` (requested ${r.idle.requested})` : ''} in ${f(r.idle.connectSeconds, ' s')}; all listed: ${f(r.idle.allListed as unknown as number)}`]);
  rows.push(['controller RSS', `${f(r.idle.controllerRssBeforeMiB)} → ${f(r.idle.controllerRssAfterMiB)} MiB (+${f(r.idle.controllerRssDeltaMiB)} MiB, ${f(r.idle.perAgentKiB)} KiB per agent)`]);
  rows.push(['GET /api/agents', f(r.idle.listSeconds, ' s')]);
  if (r.idle.note) rows.push(['  note', r.idle.note]);
  rows.push(...fleetRows(r.fleet));
  if (r.errors.length > 0) {
    section('errors');
    for (const e of r.errors) rows.push(['', e]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => (v === '' ? k : `${k.padEnd(width)}  ${v}`)).join('\n');
}

// ---- main -------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (!existsSync(join(ROOT, 'dist/server-stub/main.js')) || !existsSync(join(ROOT, 'dist/agent/main.js'))) {
    throw new Error('dist/ is not built: run `make build` (or `npm run build`) first');
  }
  const started = performance.now();
  const dataset = ensureDataset(join(ROOT, 'bench/.data'), BYTES, log);
  results.dataset = { bytes: dataset.bytes, files: dataset.files };
  log(`dataset: ${(dataset.bytes / MiB).toFixed(0)} MiB in ${dataset.files} files${dataset.generated ? ` (generated in ${dataset.generateSeconds.toFixed(1)} s)` : ' (reused)'}`);
  // Same starting point for every copy: the source tree in the page cache.
  await runShell('warm', `tar -c -C ${shq(dataset.dir)} . | cat >/dev/null`);

  const work = makeTemp('seedwire-benchrun-');
  try {
    log('tar | nc baseline (best of 2)');
    const a = await tarNc(dataset, work);
    const b = await tarNc(dataset, work);
    const best = a.seconds <= b.seconds ? a : b;
    results.seed.tarNcSeconds = round(best.seconds, 2);
    results.seed.tarNcMBps = round(dataset.bytes / MB / best.seconds);
    results.seed.tarNcSyncMBps = round(dataset.bytes / MB / (best.seconds + best.syncSeconds));
  } catch (error) {
    fail('tar|nc', error);
  }

  try {
    log('seedwire: controller + two agents, cold seeds (none, then zstd), op latency');
    await seedwirePhase(dataset);
  } catch (error) {
    fail('seedwire', error);
  }
  if (results.seed.seedwireMBps !== null && results.seed.tarNcMBps !== null) results.seed.ratio = round(results.seed.seedwireMBps / results.seed.tarNcMBps, 2);

  try {
    log('raw protocol call latency (in-process controller)');
    await rawLatencyPhase();
  } catch (error) {
    fail('latency (raw)', error);
  }

  try {
    log(`idle agents: ${IDLE_REQUESTED} protocol clients against a fresh controller`);
    await idlePhase();
  } catch (error) {
    fail('idle', error);
  }

  results.fleet = await runFleetBench(log);
  results.machine.loadAvgEnd = loadavg().map((l) => Math.round(l * 100) / 100);
  const out = join(ROOT, 'bench/results/latest.json');
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nseedwire bench — ${results.at}\n${table()}\n\nwritten ${out} (${statSync(out).size} bytes) in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  return results.errors.length > 0 ? 1 : 0;
}

process.on('exit', cleanupAllSync);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanupAll()
      .catch((error: unknown) => log(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => process.exit(130));
  });
}

main()
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  })
  .catch(async (error: unknown) => {
    fail('bench', error);
    await cleanupAll();
    process.exit(1);
  });
