/**
 * Where a routed operation's time goes (docs/scale-out.md, "Where an operation's time goes"): two
 * controllers from dist/ on a PostgreSQL and a nats-server (the test helpers'), one real agent
 * (dist/) held by controller 2, then, per case, latency percentiles and the CPU milliseconds each
 * process spent per call (from /proc: the bench, both controllers, the agent, nats-server and all
 * of PostgreSQL's processes), so a loaded machine's waits and the work per call are told apart.
 * The `hostname` cases run twice: through the API client (fetch) and through the bench's lean
 * client (lean-ops.ts: HTTP/1.1 written by hand on a kept-alive socket), which the bench's latency
 * figures use.
 *
 *   make build dist && npx tsx bench/cluster-breakdown.ts    (N=400 samples per case by default)
 *
 * CASES='lean client' runs only the cases whose names contain one of the comma-separated parts.
 *
 * SEEDWIRE_BENCH_PROFILE=DIR runs both controllers and the agent with --cpu-prof into DIR. The
 * controllers log at `warn` unless SEEDWIRE_LOG_LEVEL says otherwise (`info` is the default of a
 * controller in service, one or two lines per operation); the agent is the one-file bundle.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../client/api.js';
import { createLeanOps, type LeanOps } from './lean-ops.js';
import { startNatsServer } from '../test/helpers/nats.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { freePort } from '../test/helpers/cluster.js';
import { cleanupAll, findPid, groupCpuMs, makeTemp, onCleanup, spawnTracked, stopTracked, withChildren, type Tracked } from './procs.js';
import { AGENT_ENTRY } from './harness.js';
import { NODE_FLAGS } from '../shared/node-flags.js';
import { percentile, runBreakdown, timeCalls } from './breakdown-kit.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const N = Number(process.env['N'] || 400);
const PROFILE_DIR = process.env['SEEDWIRE_BENCH_PROFILE'] ? resolve(process.env['SEEDWIRE_BENCH_PROFILE']) : null;
/** Process name → pids whose CPU is summed under it. */
const watched: Record<string, () => number[]> = {};

/** CASES=a,b runs only the cases whose names contain one of these (e.g. CASES='lean client'). */
const CASES = (process.env['CASES'] ?? '').split(',').map((c) => c.trim()).filter(Boolean);

async function measure(name: string, once: () => Promise<unknown>): Promise<void> {
  if (CASES.length > 0 && !CASES.some((c) => name.includes(c))) return;
  for (let i = 0; i < 200; i += 1) await once();
  const sum = (): Record<string, number> => Object.fromEntries(Object.entries(watched).map(([k, pids]) => [k, groupCpuMs(pids())]));
  const before = sum();
  const { samples, ownCpuMs } = await timeCalls(N, once);
  const after = sum();
  const cpu = Object.keys(watched).map((k) => `${k} ${((after[k]! - before[k]!) / N).toFixed(2)}`);
  process.stdout.write(`${name.padEnd(40)} p50 ${percentile(samples, 0.5).toFixed(2)}  p90 ${percentile(samples, 0.9).toFixed(2)}  p99 ${percentile(samples, 0.99).toFixed(2)} ms | CPU ms per call: bench ${ownCpuMs.toFixed(2)}, ${cpu.join(', ')}\n`);
}

async function main(): Promise<void> {
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const [pg, nats] = await Promise.all([startPostgres(), startNatsServer()]);
  onCleanup(async () => {
    await nats.dispose();
    await pg.stop();
  });
  const store = await pg.createDatabase('breakdown');
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  const controller = async (n: number): Promise<{ proc: Tracked; url: string; client: ApiClient }> => {
    const dir = makeTemp(`seedwire-clbreak-${n}-`);
    writeFileSync(join(dir, 'agent-token'), agentToken, { mode: 0o600 });
    writeFileSync(join(dir, 'admin-token'), adminToken, { mode: 0o600 });
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const profiling = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, `--cpu-prof-name=controller-${n}.cpuprofile`] : [];
    const proc = spawnTracked(`controller-${n}`, process.execPath, [...NODE_FLAGS, ...profiling, join(ROOT, 'dist/server-stub/main.js'), '--listen', `127.0.0.1:${port}`, '--advertise-url', url, '--data-dir', dir, '--agent-token-file', join(dir, 'agent-token'), '--admin-token-file', join(dir, 'admin-token')], {
      cwd: ROOT,
      logTo: join(dir, 'controller.log'),
      env: { ...process.env, SEEDWIRE_STORE: store, SEEDWIRE_BUS: nats.url, SEEDWIRE_LOG_LEVEL: process.env['SEEDWIRE_LOG_LEVEL'] ?? 'warn' },
    });
    await proc.waitForRecord((r) => r['msg'] === 'listening', 60_000);
    return { proc, url, client: new ApiClient({ baseUrl: url, token: adminToken }) };
  };
  const c1 = await controller(1);
  const c2 = await controller(2);
  const dir = makeTemp('seedwire-clbreak-agent-');
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ controller: `${c2.url.replace(/^http/, 'ws')}/agent`, token: agentToken, id: 'held-by-2', stateDir: join(dir, 'state'), advanced: { startupJitterMs: 0 } }));
  const agentProfiling = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, '--cpu-prof-name=agent.cpuprofile'] : [];
  const agent = spawnTracked('agent', process.execPath, [...NODE_FLAGS, ...agentProfiling, AGENT_ENTRY, '--config', file], { cwd: ROOT, logTo: join(dir, 'agent.log') });
  try {
    for (;;) {
      const listed = await c1.client.agents();
      if (listed.some((a) => a.id === 'held-by-2' && a.connected)) break;
      await delay(100);
    }
    const postmaster = Number(readFileSync(join(pg.baseDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const natsPid = findPid((cmd) => cmd.includes('nats-server') && cmd.includes(String(nats.port)));
    if (natsPid === null) throw new Error('nats-server process not found');
    Object.assign(watched, {
      'controller 1': () => [c1.proc.pid],
      'controller 2': () => [c2.proc.pid],
      agent: () => [agent.pid],
      nats: () => [natsPid],
      postgres: () => withChildren(postmaster),
    });
    const op = async (client: ApiClient): Promise<void> => {
      const operation = await client.runOp('held-by-2', 'hostname', {});
      if (operation.state !== 'succeeded') throw new Error(`hostname: ${operation.state} ${JSON.stringify(operation.error)}`);
    };
    const get = (url: string, path: string) => async (): Promise<void> => {
      const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`${path}: ${res.status}`);
    };
    const lean1 = createLeanOps(c1.url, adminToken);
    const lean2 = createLeanOps(c2.url, adminToken);
    const leanOp = (ops: LeanOps) => async (): Promise<void> => {
      const operation = await ops.runOp('held-by-2', 'hostname', {}, { wait: 30 });
      if (operation.state !== 'succeeded') throw new Error(`hostname: ${operation.state}`);
    };
    process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ${N} sequential calls per case\n`);
    await measure('GET /healthz on controller 1', get(c1.url, '/healthz'));
    await op(c2.client);
    const lastId = (await c2.client.operations({ limit: 1 }))[0]?.id ?? '';
    await measure('GET /api/operations/:id on controller 1', get(c1.url, `/api/operations/${lastId}`));
    await measure('hostname on the holder (controller 2)', () => op(c2.client));
    await measure('hostname routed (controller 1 → 2)', () => op(c1.client));
    await measure('the same through the lean client, on the holder', leanOp(lean2));
    await measure('the same through the lean client, routed', leanOp(lean1));
  } finally {
    await stopTracked(agent);
    await Promise.allSettled([stopTracked(c1.proc), stopTracked(c2.proc)]);
    await cleanupAll();
  }
}

runBreakdown('cluster-breakdown', main);
