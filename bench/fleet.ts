/**
 * `make bench`, fleet section (docs/performance.md, "The controller at fleet size"): the
 * controller process with many real protocol clients, from the fleet simulator the load tests
 * use (test/helpers/fleet-client.ts: the agent's own reconnect loop, enrollment, heartbeats at the
 * real interval, `hostname` answered; many clients per child process).
 *
 *  1. `hostname` round trips through the HTTP API with SEEDWIRE_BENCH_FLEET_OPS_AGENTS (default
 *     1,000) agents connected: sequential, spread over the agents;
 *  2. SEEDWIRE_BENCH_FLEET (default 10,000; 0 skips the section) idle agents dialling a fresh
 *     controller at once: time until all are welcomed, the controller's peak RSS meanwhile, an op
 *     answered every second while they connect; then at rest (heartbeats on) the controller's own
 *     CPU over SEEDWIRE_BENCH_FLEET_REST_SECONDS (default 60, three heartbeat periods) and its RSS.
 *
 * CPU and RSS are the controller process's (from /proc), not the machine's: the simulator's
 * children run on the same two cores, and their CPU is reported beside it.
 * SEEDWIRE_BENCH_PROFILE=DIR runs the fleet controller with --cpu-prof into DIR; the log gives the
 * rest window's wall-clock bounds (`restFrom`/`restTo` in the JSON) to cut the profile to it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../client/api.js';
import { createLeanOps, type LeanOps, type OpRunner } from './lean-ops.js';
import { startFleet, type Fleet } from '../test/helpers/fleet-client.js';
import { cpuSeconds, makeTemp, nofileLimits, procStatusKiB, removeTemp, spawnTracked, stopTracked, type Tracked } from './procs.js';
import { probeArgs } from './harness.js';
import { NODE_FLAGS } from '../shared/node-flags.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a whole number ≥ 0, got '${raw}'`);
  return n;
}

const FLEET = envCount('SEEDWIRE_BENCH_FLEET', 10_000);
/** 0 skips the `hostname` latency part (e.g. to measure only the herd). */
const OPS_AGENTS = Math.min(envCount('SEEDWIRE_BENCH_FLEET_OPS_AGENTS', 1_000), FLEET);
const OPS = envCount('SEEDWIRE_BENCH_OPS', 500);
/** Ops before the latency is sampled (bench/env.ts, `warmup`: V8 tiers the code up over ~2,000). */
const WARMUP = envCount('SEEDWIRE_BENCH_WARMUP', 2_000);
const REST_SECONDS = envCount('SEEDWIRE_BENCH_FLEET_REST_SECONDS', 60);
/** Child processes of the simulator: enough to spread its work, few enough to leave the controller a core. */
const PROCESSES = Math.max(1, envCount('SEEDWIRE_BENCH_FLEET_PROCS', 4));
/** How long all agents may take to connect before the bench gives up on the rest. */
const CONNECT_LIMIT_MS = 180_000;
/** SEEDWIRE_BENCH_FLEET_TRACE=1: the simulator counts its clients' log messages, printed in the trace. */
const TRACE = process.env['SEEDWIRE_BENCH_FLEET_TRACE'] === '1';
const PROFILE_DIR = process.env['SEEDWIRE_BENCH_PROFILE'] ? resolve(process.env['SEEDWIRE_BENCH_PROFILE']) : null;

export interface FleetLatency {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface FleetResults {
  /** `hostname` via HTTP with `opsAgents` connected. */
  opsAgents: number;
  latency: FleetLatency | null;
  /** The controller's own CPU per `hostname` op (ms): steadier than latency on a busy machine. */
  controllerCpuMsPerOp: number | null;
  agents: number;
  /** Seconds from the first dial until every agent was welcomed (null: not all within the limit). */
  connectSeconds: number | null;
  connected: number;
  /** Upgrades answered 503 + Retry-After by admission while they connected. */
  paced: number | null;
  /** The controller's own CPU while the fleet connected, per agent (ms): steadier than the time on a busy machine. */
  controllerCpuMsPerAgentConnect: number | null;
  /** The controller's last admission log line while they connected (rate, fleet, waiting, load, event-loop delay). */
  lastAdmission: Record<string, unknown> | null;
  controllerPeakConnectingMiB: number | null;
  controllerRestMiB: number | null;
  /** The controller's own CPU at rest, % of one core, over restSeconds. */
  controllerRestCpuPercent: number | null;
  restSeconds: number;
  /** Wall-clock bounds of the rest window (ms since the epoch), to cut a CPU profile to it. */
  restFrom: number | null;
  restTo: number | null;
  /** The simulator's children together, % of one core, over the same window. */
  simulatorRestCpuPercent: number | null;
  /** One `hostname` op a second while the fleet connected: answered / tried, and the slowest. */
  opsWhileConnecting: { tried: number; answered: number; maxMs: number | null };
  /** `hostname` at rest with every agent connected. */
  latencyAtRest: FleetLatency | null;
  listSeconds: number | null;
  note: string | null;
}

type Log = (line: string) => void;

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('SEEDWIRE_')) delete env[key];
  return env;
}

/** Raises a process's soft open-file limit (prlimit) to at least `need`; returns what it has. */
export function ensureNofile(pid: number, need: number): number {
  const limits = nofileLimits(pid);
  if (!limits || limits.soft >= need) return limits?.soft ?? need;
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${Math.min(need, limits.hard)}:${limits.hard}`]);
  } catch {
    // what it has is reported below
  }
  return nofileLimits(pid)?.soft ?? limits.soft;
}

interface Controller {
  proc: Tracked;
  wsUrl: string;
  client: ApiClient;
  /** For timed operations (lean-ops.ts). */
  ops: LeanOps;
  url: string;
  adminToken: string;
  dataDir: string;
}

async function startController(name: string, agentToken: string, profile: boolean): Promise<Controller> {
  const dataDir = makeTemp(`seedwire-benchfleet-${name}-`);
  const adminToken = randomBytes(16).toString('hex');
  writeFileSync(join(dataDir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dataDir, 'admin-token'), adminToken, { mode: 0o600 });
  const profiling = profile && PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  if (profiling.length > 0) mkdirSync(PROFILE_DIR!, { recursive: true });
  const proc = spawnTracked(
    name,
    process.execPath,
    [...NODE_FLAGS, ...profiling, ...probeArgs(name), join(ROOT, 'dist/server-stub/main.js'), '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--agent-token-file', join(dataDir, 'agent-token'), '--admin-token-file', join(dataDir, 'admin-token')],
    { cwd: ROOT, env: childEnv(), logTo: join(dataDir, 'controller.log') },
  );
  const listening = await proc.waitForRecord((r) => r['msg'] === 'listening', 20_000);
  const url = String(listening['url']);
  return { proc, wsUrl: `${url.replace(/^http/, 'ws')}/agent`, client: new ApiClient({ baseUrl: url, token: adminToken }), ops: createLeanOps(url, adminToken), url, adminToken, dataDir };
}

async function stopController(c: Controller, log: Log): Promise<void> {
  const t0 = performance.now();
  const { code, signal } = await stopTracked(c.proc, 60_000);
  if (code !== 0) log(`fleet: ${c.proc.name} stopped with ${code ?? signal} after ${((performance.now() - t0) / 1000).toFixed(1)} s: ${c.proc.tail.slice(-3).join(' | ')}`);
  removeTemp(c.dataDir);
}

export function latencyOf(samples: number[]): FleetLatency | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]! * 100) / 100;
  return { n: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
}

export async function hostnameOnce(client: OpRunner, agentId: string): Promise<number> {
  const t0 = performance.now();
  const operation = await client.runOp(agentId, 'hostname', {}, { wait: 30 });
  const ms = performance.now() - t0;
  const hostname = (operation.result as { hostname?: string } | null)?.hostname;
  if (operation.state !== 'succeeded' || hostname !== agentId) throw new Error(`hostname on ${agentId} ended ${operation.state} with ${JSON.stringify(operation.result ?? operation.error)}`);
  return ms;
}

/** Sequential ops spread over the fleet (a stride through the ids, so no agent is hit twice in a row). */
async function measureHostname(client: OpRunner, ids: string[], n: number, warmup: number): Promise<FleetLatency | null> {
  const pick = (i: number): string => ids[(i * 7_919) % ids.length]!;
  for (let i = 0; i < warmup; i++) await hostnameOnce(client, pick(i + n));
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push(await hostnameOnce(client, pick(i)));
  return latencyOf(samples);
}

function sumCpu(pids: number[]): number | null {
  let total = 0;
  for (const pid of pids) {
    const s = cpuSeconds(pid);
    if (s === null) return null;
    total += s;
  }
  return total;
}

const idsOf = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

async function waitForWelcomes(fleet: Fleet, count: number, limitMs: number, onSecond?: () => Promise<void>): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (fleet.welcomes.size < count) {
    if (Date.now() > deadline) return false;
    await (onSecond ? Promise.all([onSecond(), delay(1_000)]) : delay(200));
  }
  return true;
}

async function latencyPart(results: FleetResults, log: Log): Promise<void> {
  const token = randomBytes(16).toString('hex');
  const ctl = await startController('fleet-ops-controller', token, true);
  ensureNofile(ctl.proc.pid, OPS_AGENTS + 1_000);
  const fleet = startFleet({ url: ctl.wsUrl, token, count: OPS_AGENTS, processes: Math.min(PROCESSES, Math.ceil(OPS_AGENTS / 250)), prefix: 'ops' });
  try {
    if (!(await waitForWelcomes(fleet, OPS_AGENTS, CONNECT_LIMIT_MS))) throw new Error(`only ${fleet.welcomes.size} of ${OPS_AGENTS} agents connected within ${CONNECT_LIMIT_MS / 1000} s`);
    log(`fleet: ${OPS_AGENTS} agents connected; ${OPS} sequential hostname ops`);
    await measureHostname(ctl.ops, idsOf('ops', OPS_AGENTS), WARMUP, 0);
    const c0 = cpuSeconds(ctl.proc.pid);
    results.latency = await measureHostname(ctl.ops, idsOf('ops', OPS_AGENTS), OPS, 0);
    const c1 = cpuSeconds(ctl.proc.pid);
    if (c0 !== null && c1 !== null) results.controllerCpuMsPerOp = Math.round(((c1 - c0) * 1_000 * 100) / OPS) / 100;
  } finally {
    await fleet.stop();
    await stopController(ctl, log);
  }
}

async function idlePart(results: FleetResults, log: Log): Promise<void> {
  const token = randomBytes(16).toString('hex');
  const ctl = await startController('fleet-controller', token, true);
  const soft = ensureNofile(ctl.proc.pid, FLEET + 1_000);
  if (soft < FLEET + 100) results.note = `the controller's open-file limit is ${soft}, below ${FLEET} agents: raise it (README, limits)`;
  // Every admission line (the tracked process keeps only its last log lines).
  const admissionLines: Array<Record<string, unknown>> = [];
  ctl.proc.child.stdout?.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) {
      if (!line.includes('agent upgrades paced')) continue;
      try {
        admissionLines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line split across two chunks: the next summary line will do
      }
    }
  });
  let peakKiB = 0;
  const sampler = setInterval(() => {
    peakKiB = Math.max(peakKiB, procStatusKiB(ctl.proc.pid, 'VmRSS') ?? 0);
  }, 250);
  const t0 = performance.now();
  const cpuAtStart = cpuSeconds(ctl.proc.pid);
  const fleet = startFleet({ url: ctl.wsUrl, token, count: FLEET, processes: PROCESSES, prefix: 'idle', trace: TRACE });
  try {
    const whileConnecting: number[] = [];
    let tried = 0;
    const probe = async (): Promise<void> => {
      // An agent already welcomed: is the controller still answering while the rest connect?
      const first = fleet.welcomes.keys().next();
      if (first.done === true) return;
      tried++;
      try {
        whileConnecting.push(await hostnameOnce(ctl.ops, first.value));
      } catch (error) {
        log(`fleet: op while connecting failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    // A trace every 5 s while they connect: welcomes seen by the simulator, sessions and paced
    // upgrades counted by the controller, and each side's CPU (who is starved, who is pacing).
    const scrape = async (): Promise<Record<string, number>> => {
      const text = await fetch(`${ctl.url}/metrics`, { headers: { authorization: `Bearer ${ctl.adminToken}` } })
        .then((res) => res.text())
        .catch(() => '');
      const read = (name: string): number => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
      return { sessions: read('seedwire_agent_sessions_total'), paced: read('seedwire_agent_upgrades_paced_total') };
    };
    let last = { at: performance.now(), ctl: cpuAtStart ?? 0, sim: sumCpu(fleet.pids) ?? 0, paced: 0 };
    const tracer = setInterval(() => {
      void scrape().then((m) => {
        const at = performance.now();
        const c = cpuSeconds(ctl.proc.pid) ?? 0;
        const sim = sumCpu(fleet.pids) ?? 0;
        const wall = (at - last.at) / 1000;
        log(
          `fleet trace +${((at - t0) / 1000).toFixed(0)} s: welcomed ${fleet.welcomes.size}, controller sessions ${m['sessions']}, paced ${m['paced']} (+${Math.round((m['paced']! - last.paced) / wall)}/s); CPU controller ${Math.round(((c - last.ctl) / wall) * 100)}%, simulator ${Math.round(((sim - last.sim) / wall) * 100)}%`,
        );
        last = { at, ctl: c, sim, paced: m['paced']! };
        if (TRACE) log(`fleet trace: simulator ${JSON.stringify(fleet.takeTrace())}`);
      });
    }, 5_000);
    const all = await waitForWelcomes(fleet, FLEET, CONNECT_LIMIT_MS, probe).finally(() => clearInterval(tracer));
    results.connectSeconds = all ? Math.round((performance.now() - t0) / 100) / 10 : null;
    results.connected = fleet.welcomes.size;
    const cpuConnected = cpuSeconds(ctl.proc.pid);
    if (cpuAtStart !== null && cpuConnected !== null && results.connected > 0) results.controllerCpuMsPerAgentConnect = Math.round(((cpuConnected - cpuAtStart) * 1_000 * 100) / results.connected) / 100;
    const lastPace = admissionLines.at(-1);
    if (TRACE) for (const line of admissionLines) log(`fleet admission: ${JSON.stringify(line)}`);
    if (lastPace) results.lastAdmission = Object.fromEntries(['ratePerSecond', 'fleet', 'waiting', 'load', 'eventLoopDelayMs', 'refused'].map((k) => [k, lastPace[k]]));
    results.opsWhileConnecting = { tried, answered: whileConnecting.length, maxMs: whileConnecting.length > 0 ? Math.round(Math.max(...whileConnecting)) : null };
    clearInterval(sampler);
    results.controllerPeakConnectingMiB = Math.round(peakKiB / 102.4) / 10;
    log(`fleet: ${results.connected} of ${FLEET} connected in ${((performance.now() - t0) / 1000).toFixed(1)} s; at rest for ${REST_SECONDS} s`);
    const metrics = await fetch(`${ctl.url}/metrics`, { headers: { authorization: `Bearer ${ctl.adminToken}` } })
      .then((res) => res.text())
      .catch(() => '');
    const paced = /^seedwire_agent_upgrades_paced_total (\d+)/m.exec(metrics);
    results.paced = paced ? Number(paced[1]) : null;
    // Let the last sessions' start-up work (facts, audit) settle, then measure a quiet window.
    await delay(5_000);
    const c0 = cpuSeconds(ctl.proc.pid);
    const s0 = sumCpu(fleet.pids);
    const w0 = performance.now();
    results.restFrom = Date.now();
    await delay(REST_SECONDS * 1_000);
    results.restTo = Date.now();
    const wall = (performance.now() - w0) / 1000;
    const c1 = cpuSeconds(ctl.proc.pid);
    const s1 = sumCpu(fleet.pids);
    results.controllerRestCpuPercent = c0 !== null && c1 !== null ? Math.round(((c1 - c0) / wall) * 1_000) / 10 : null;
    results.simulatorRestCpuPercent = s0 !== null && s1 !== null ? Math.round(((s1 - s0) / wall) * 1_000) / 10 : null;
    results.controllerRestMiB = Math.round((procStatusKiB(ctl.proc.pid, 'VmRSS') ?? 0) / 102.4) / 10;
    results.latencyAtRest = await measureHostname(ctl.ops, [...fleet.welcomes.keys()], Math.min(OPS, 200), 20);
    const t1 = performance.now();
    const listed = await ctl.client.agents();
    results.listSeconds = Math.round((performance.now() - t1) / 10) / 100;
    const connected = listed.filter((a) => a.connected).length;
    if (connected !== FLEET) results.note = `${results.note ? `${results.note}; ` : ''}/api/agents lists ${connected} of ${FLEET} connected`;
  } finally {
    clearInterval(sampler);
    await fleet.stop();
    await stopController(ctl, log);
  }
}

/** The fleet section of `make bench`; never throws (a failed part leaves its figures null and a note). */
export async function runFleetBench(log: Log): Promise<FleetResults | null> {
  if (FLEET === 0) return null;
  const results: FleetResults = {
    opsAgents: OPS_AGENTS,
    latency: null,
    controllerCpuMsPerOp: null,
    agents: FLEET,
    connectSeconds: null,
    connected: 0,
    paced: null,
    controllerCpuMsPerAgentConnect: null,
    lastAdmission: null,
    controllerPeakConnectingMiB: null,
    controllerRestMiB: null,
    controllerRestCpuPercent: null,
    restSeconds: REST_SECONDS,
    restFrom: null,
    restTo: null,
    simulatorRestCpuPercent: null,
    opsWhileConnecting: { tried: 0, answered: 0, maxMs: null },
    latencyAtRest: null,
    listSeconds: null,
    note: null,
  };
  const noteFailure = (part: string, error: unknown): void => {
    const message = `${part}: ${error instanceof Error ? error.message : String(error)}`;
    results.note = results.note ? `${results.note}; ${message}` : message;
    log(`fleet ${message}`);
  };
  // The simulator's children inherit this process's limit.
  ensureNofile(process.pid, Math.ceil(FLEET / PROCESSES) + 1_000);
  if (OPS_AGENTS > 0) {
    log(`fleet: hostname round trips with ${OPS_AGENTS} agents connected`);
    await latencyPart(results, log).catch((error: unknown) => noteFailure('latency', error));
  }
  log(`fleet: ${FLEET} idle agents dial a fresh controller (${PROCESSES} simulator processes)`);
  await idlePart(results, log).catch((error: unknown) => noteFailure('idle fleet', error));
  return results;
}

/** Rows for bench/run.ts's table. */
export function fleetRows(r: FleetResults | null): Array<[string, string]> {
  if (r === null) return [['— fleet (SEEDWIRE_BENCH_FLEET=0: skipped)', '']];
  const f = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'n/a' : `${v}${unit}`);
  const lat = (l: FleetLatency | null): string => (l ? `p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms (n ${l.n})` : 'n/a');
  const rows: Array<[string, string]> = [[`— the controller at fleet size (${r.agents} agents)`, '']];
  rows.push([`hostname via HTTP, ${r.opsAgents} agents`, `${lat(r.latency)}   (target p50 ≤ 2, p99 ≤ 10 ms)`]);
  rows.push(['  controller CPU per op', f(r.controllerCpuMsPerOp, ' ms')]);
  rows.push([`${r.agents} agents connect`, `${r.connectSeconds === null ? `not all: ${r.connected}` : `all in ${r.connectSeconds} s`} (target ≤ 60 s); paced ${f(r.paced)} upgrades`]);
  rows.push(['  controller CPU per agent connecting', `${f(r.controllerCpuMsPerAgentConnect, ' ms')}; last admission state ${r.lastAdmission ? JSON.stringify(r.lastAdmission) : 'n/a'}`]);
  rows.push(['  ops while connecting', `${r.opsWhileConnecting.answered} of ${r.opsWhileConnecting.tried} answered, slowest ${f(r.opsWhileConnecting.maxMs, ' ms')}`]);
  rows.push(['controller RSS connecting / at rest', `${f(r.controllerPeakConnectingMiB)} / ${f(r.controllerRestMiB)} MiB (target ≤ 1 GB)`]);
  rows.push([`controller CPU at rest (${r.restSeconds} s)`, `${f(r.controllerRestCpuPercent, '%')} of a core (target ≤ 5%); simulator ${f(r.simulatorRestCpuPercent, '%')}`]);
  rows.push([`hostname at rest, ${r.agents} agents`, lat(r.latencyAtRest)]);
  rows.push(['GET /api/agents', f(r.listSeconds, ' s')]);
  if (r.note) rows.push(['  note', r.note]);
  return rows;
}

/** Alone: `npx tsx bench/fleet.ts` (after `npm run build`) prints the section and its JSON. */
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const log: Log = (line) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const { cleanupAll } = await import('./procs.js');
  const r = await runFleetBench(log);
  await cleanupAll();
  const rows = fleetRows(r);
  const width = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`${rows.map(([k, v]) => (v === '' ? k : `${k.padEnd(width)}  ${v}`)).join('\n')}\n${JSON.stringify(r, null, 2)}\n`);
}
