/**
 * `make bench-cluster` (the `cluster` section of `make bench`; docs/scale-out.md, "Measured"):
 * three controller processes (dist/) on one PostgreSQL and one nats-server (the test helpers'
 * servers: temp dirs, free ports), and SEEDWIRE_BENCH_CLUSTER_AGENTS (default 3,000) real
 * protocol agents per controller from the fleet simulator (test/helpers/fleet-client.ts), each
 * with the three controllers in its list, starting at its own.
 *
 *  1. every agent connected (in SEEDWIRE_BENCH_CLUSTER_WAVES waves, default 3): the time, and
 *     each controller's RSS at rest (target ≤ 400 MB);
 *  2. `hostname` through HTTP on controller 1 for agents controllers 2 and 3 hold (routed over
 *     NATS), p50/p99 (target ≤ 3 / ≤ 15 ms), beside the same op on agents controller 1 holds;
 *  3. controller 1 SIGKILLed: the time until all its agents are welcomed again by the others
 *     (target ≤ 60 s), and the busiest second's share of them (target ≤ 10%), counted by when
 *     the survivors sent the welcomes (their clock, carried in the frame) and, beside it, by when
 *     the simulator read them;
 *  4. with the fleet stopped, a fresh controller owning a running seed between two real agents is
 *     SIGKILLed at 30% of the transfer: when a survivor adopts it and when the transfer runs again
 *     (target ≤ 60 s), its end and check, and the bytes sent twice (bench/cluster-seed.ts).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { profileWhile } from './inspector-profile.js';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../client/api.js';
import { createLeanOps, type LeanOps } from './lean-ops.js';
import { startFleet } from '../test/helpers/fleet-client.js';
import { startNatsServer, type NatsServer } from '../test/helpers/nats.js';
import { startPostgres, type PostgresServer } from '../test/helpers/postgres.js';
import { freePort } from '../test/helpers/cluster.js';
import { ensureNofile, hostnameOnce, latencyOf, type FleetLatency } from './fleet.js';
import { measureSeedAdoption, type SeedAdoptionResults } from './cluster-seed.js';
import { findPid, groupCpuMs, machineIdleSeconds, makeTemp, onCleanup, procStatusKiB, removeTemp, spawnTracked, stealSeconds, stopTracked, withChildren, type Tracked } from './procs.js';
import { NODE_FLAGS } from '../shared/node-flags.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
/**
 * SEEDWIRE_BENCH_PROFILE=DIR: controllers 1 and 2 are profiled (through the inspector) over the
 * timed loop only, into DIR/cluster-controller-N.cpuprofile (bench/profile-summary.ts).
 */
const PROFILE_DIR = process.env['SEEDWIRE_BENCH_PROFILE'] ? resolve(process.env['SEEDWIRE_BENCH_PROFILE']) : null;
/** SEEDWIRE_BENCH_CLUSTER_SPLIT=1: after the timed loop, each kind of call alone, with its CPU per call by process (logged only). */
const SPLIT = process.env['SEEDWIRE_BENCH_CLUSTER_SPLIT'] === '1';

function envCount(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a whole number ≥ 0, got '${raw}'`);
  return n;
}

const CONTROLLERS = 3;
const PER_CONTROLLER = envCount('SEEDWIRE_BENCH_CLUSTER_AGENTS', 3_000);
/**
 * Timed rounds. 1,000 (7–10 s): a p99 of 300 samples is the third slowest, and a full collection
 * in one controller (two to four per section, docs/scale-out.md) moved it by whether it fell in
 * the loop's 2–3 s.
 */
const OPS = envCount('SEEDWIRE_BENCH_CLUSTER_OPS', 1_000);
/** Ops (half routed, half local) before the latency is sampled (bench/env.ts, `warmup`). */
const WARMUP = envCount('SEEDWIRE_BENCH_WARMUP', 2_000);
const PROCESSES = Math.max(1, envCount('SEEDWIRE_BENCH_FLEET_PROCS', 4));
/**
 * The fleet dials in this many waves, each waiting for the previous to be welcomed: on the shared
 * 2-core machine one herd of 9,000 enrolling at once starves the simulator (performance.md), which
 * measures the machine rather than the cluster at rest. 1: all at once.
 */
const WAVES = Math.max(1, envCount('SEEDWIRE_BENCH_CLUSTER_WAVES', 3));
/** Per wave. */
const CONNECT_LIMIT_MS = 240_000;
/** The fleet at rest this long after its last welcome before the kill: one herd spread (20 s) and a margin. */
const AT_REST_BEFORE_KILL_MS = 25_000;
/** How long the killed controller's agents may take to come back before the bench stops waiting. */
const FAILOVER_LIMIT_MS = 180_000;

export interface ClusterBenchResults {
  controllers: number;
  agentsPerController: number;
  agents: number;
  /** Seconds until every agent was welcomed, over all waves (null: not all within the limit). */
  connectSeconds: number | null;
  waves: number;
  connected: number;
  /** Each controller's RSS after all connected and 10 s at rest, MiB. */
  rssMiB: Array<number | null>;
  /** Each controller's peak RSS while the fleet connected, MiB. */
  peakConnectingMiB: Array<number | null>;
  /** Agents each controller holds once all are connected (its own metrics). */
  held: Array<number | null>;
  /** `hostname` on controller 1 for agents held by controllers 2 and 3. */
  routed: FleetLatency | null;
  /** The same op on controller 1 for agents it holds. */
  local: FleetLatency | null;
  /**
   * What any API call costs on controller 1 at that moment, interleaved with the ops: `GET /healthz`
   * (HTTP and the event loop, no store) and `GET /api/operations/:id` (the same plus one
   * PostgreSQL read). A `hostname` on the holder is about the second plus the agent's round trip.
   */
  floor: { healthz: FleetLatency | null; storeRead: FleetLatency | null };
  /**
   * CPU milliseconds each process (group) spent per round of the timed loop (one routed op, one
   * local op, a GET /healthz and a GET of one operation), and the machine's idle and stolen CPU
   * over the loop: on two cores, what the ops wait for.
   */
  cpuPerRound: Record<string, number> | null;
  /** The same tally over 5 s at rest just before the warm-up, per second: the fleet's own load. */
  cpuAtRestPerSecond: Record<string, number> | null;
  /** Ops of either kind that failed (not timed). */
  failedOps: number;
  failover: {
    victimAgents: number;
    /** Seconds from the SIGKILL until the last of its agents was welcomed again (null: not all within the limit). */
    backSeconds: number | null;
    back: number;
    /** The most of them welcomed in one second (by the welcomes' send time), as a share of all of them. */
    busiestSecondShare: number | null;
    /** Welcomes per second after the kill, from second 0, by when the survivors sent them. */
    perSecond: number[];
    /** The same by when the simulated agents read them (a starved simulator bunches these). */
    busiestReadSecondShare: number | null;
    readPerSecond: number[];
    /** Each survivor's seedwire_agent_welcomes_held_total after the return. */
    welcomesHeld: Array<number | null>;
    /** Agents each survivor holds after. */
    heldAfter: Array<number | null>;
  } | null;
  /** A running seed whose owner was SIGKILLed (bench/cluster-seed.ts); null when not reached. */
  seedAdoption: SeedAdoptionResults | null;
  /** Seconds between the fleet's last welcome and the SIGKILL (at least AT_REST_BEFORE_KILL_MS). */
  restBeforeKillSeconds: number | null;
  /** Load average (1, 5, 15 min) when the section started: the machine is shared. */
  loadAvgAtStart: number[];
  note: string | null;
}

type Log = (line: string) => void;

interface Member {
  n: number;
  proc: Tracked;
  url: string;
  wsUrl: string;
  client: ApiClient;
  /** For timed operations (lean-ops.ts). */
  ops: LeanOps;
  adminToken: string;
  dataDir: string;
  /** Where SIGUSR1 opens its inspector (only with SEEDWIRE_BENCH_PROFILE). */
  inspectPort: number | null;
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('SEEDWIRE_')) delete env[key];
  return { ...env, ...extra };
}

async function startMember(n: number, agentToken: string, adminToken: string, store: string, bus: string): Promise<Member> {
  const dataDir = makeTemp(`seedwire-benchcluster-${n}-`);
  writeFileSync(join(dataDir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dataDir, 'admin-token'), adminToken, { mode: 0o600 });
  const port = await freePort();
  const inspectPort = PROFILE_DIR === null ? null : await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawnTracked(
    `cluster-controller-${n}`,
    process.execPath,
    [...NODE_FLAGS, ...(inspectPort === null ? [] : [`--inspect-port=127.0.0.1:${inspectPort}`]), join(ROOT, 'dist/server-stub/main.js'), '--listen', `127.0.0.1:${port}`, '--advertise-url', url, '--data-dir', dataDir, '--agent-token-file', join(dataDir, 'agent-token'), '--admin-token-file', join(dataDir, 'admin-token')],
    // The store and bus URLs in the environment, as docs/scale-out.md recommends (the store's carries a password).
    { cwd: ROOT, env: childEnv({ SEEDWIRE_STORE: store, SEEDWIRE_BUS: bus }), logTo: join(dataDir, 'controller.log') },
  );
  await proc.waitForRecord((r) => r['msg'] === 'listening', 60_000);
  ensureNofile(proc.pid, CONTROLLERS * PER_CONTROLLER + 1_000);
  return { n, proc, url, wsUrl: `ws://127.0.0.1:${port}/agent`, client: new ApiClient({ baseUrl: url, token: adminToken }), ops: createLeanOps(url, adminToken), adminToken, dataDir, inspectPort };
}

async function metric(member: Member, name: string): Promise<number | null> {
  const text = await fetch(`${member.url}/metrics`, { headers: { authorization: `Bearer ${member.adminToken}` } })
    .then((res) => res.text())
    .catch(() => '');
  const match = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}

const mib = (kib: number | null): number | null => (kib === null ? null : Math.round(kib / 102.4) / 10);

/** The cluster section; never throws (a failed part leaves its figures null and a note). */
export async function runClusterBench(log: Log): Promise<ClusterBenchResults | null> {
  if (PER_CONTROLLER === 0) return null;
  const { loadavg } = await import('node:os');
  const agents = CONTROLLERS * PER_CONTROLLER;
  const results: ClusterBenchResults = {
    controllers: CONTROLLERS,
    agentsPerController: PER_CONTROLLER,
    agents,
    connectSeconds: null,
    waves: WAVES,
    connected: 0,
    rssMiB: [],
    peakConnectingMiB: [],
    held: [],
    routed: null,
    local: null,
    floor: { healthz: null, storeRead: null },
    cpuPerRound: null,
    cpuAtRestPerSecond: null,
    failedOps: 0,
    failover: null,
    seedAdoption: null,
    restBeforeKillSeconds: null,
    loadAvgAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    note: null,
  };
  const noteFailure = (part: string, error: unknown): void => {
    const message = `${part}: ${error instanceof Error ? error.message : String(error)}`;
    results.note = results.note ? `${results.note}; ${message}` : message;
    log(`cluster ${message}`);
  };
  let pg: PostgresServer | null = null;
  let nats: NatsServer | null = null;
  const members: Member[] = [];
  const stopEngines = async (): Promise<void> => {
    await nats?.dispose();
    await pg?.stop();
  };
  const dropCleanup = onCleanup(stopEngines);
  ensureNofile(process.pid, Math.ceil(agents / PROCESSES) + 1_000);
  const token = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const fleets: Array<ReturnType<typeof startFleet>> = [];
  const welcomed = (): number => fleets.reduce((n, f) => n + f.welcomes.size, 0);
  const welcomesOf = (id: string): number[] => fleets.find((f) => f.welcomes.has(id))?.welcomes.get(id) ?? [];
  try {
    [pg, nats] = await Promise.all([startPostgres(), startNatsServer()]);
    const store = await pg.createDatabase('bench_cluster');
    for (let n = 1; n <= CONTROLLERS; n++) members.push(await startMember(n, token, adminToken, store, nats.url));
    log(`cluster: ${CONTROLLERS} controllers on PostgreSQL ${pg.port} and NATS ${nats.port}; ${agents} agents dial them (${PROCESSES} simulator processes)`);

    // 1. The fleet connects, spread over the three (agent k starts at controller k mod 3).
    const peaks = members.map(() => 0);
    const sampler = setInterval(() => members.forEach((m, i) => (peaks[i] = Math.max(peaks[i]!, procStatusKiB(m.proc.pid, 'VmRSS') ?? 0))), 250);
    const t0 = performance.now();
    let lastLog = performance.now();
    for (let wave = 0; wave < WAVES; wave++) {
      const count = Math.floor(agents / WAVES) + (wave < agents % WAVES ? 1 : 0);
      const target = welcomed() + count;
      const waveStart = performance.now();
      fleets.push(startFleet({ url: members.map((m) => m.wsUrl), token, count, processes: PROCESSES, prefix: `cl${wave}` }));
      while (welcomed() < target && performance.now() - waveStart < CONNECT_LIMIT_MS) {
        await delay(200);
        if (performance.now() - lastLog > 10_000) {
          lastLog = performance.now();
          log(`cluster: wave ${wave + 1} of ${WAVES}: ${welcomed()} of ${agents} welcomed after ${((lastLog - t0) / 1000).toFixed(0)} s`);
        }
      }
      if (welcomed() < target) break;
    }
    clearInterval(sampler);
    results.connected = welcomed();
    results.connectSeconds = results.connected === agents ? Math.round((performance.now() - t0) / 100) / 10 : null;
    results.peakConnectingMiB = peaks.map((kib) => mib(kib));
    log(`cluster: ${results.connected} of ${agents} connected${results.connectSeconds === null ? '' : ` in ${results.connectSeconds} s`}; 10 s at rest`);
    await delay(10_000);
    results.rssMiB = members.map((m) => mib(procStatusKiB(m.proc.pid, 'VmRSS')));
    results.held = await Promise.all(members.map((m) => metric(m, 'seedwire_cluster_agents_held')));
    log(`cluster: RSS ${results.rssMiB.join(' / ')} MiB; held ${results.held.join(' / ')}`);

    // Who holds whom now (admission may have sent an agent on down its list): controller 1's listing says.
    const first = members[0]!;
    const holders = async (): Promise<{ own: string[]; others: string[]; connected: number }> => {
      const listed = (await fetch(`${first.url}/api/agents`, { headers: { authorization: `Bearer ${adminToken}` } }).then((res) => res.json())) as Array<{ id: string; connected: boolean; holder?: string | null }>;
      return {
        own: listed.filter((a) => a.connected && a.holder === first.url).map((a) => a.id),
        others: listed.filter((a) => a.connected && a.holder !== first.url).map((a) => a.id),
        connected: listed.filter((a) => a.connected).length,
      };
    };
    const { own, others, connected } = await holders();
    log(`cluster: controller 1 lists ${connected} connected: ${own.length} its own, ${others.length} held by the others`);

    // 2. hostname on controller 1: routed (agents of 2 and 3) and local (its own), interleaved.
    try {
      const pick = (list: string[], i: number): string => list[(i * 7_919) % list.length]!;
      const groups = cpuGroups(members, fleets, pg!, nats!);
      const restStart = sampleCpu(groups);
      await delay(5_000);
      const restEnd = sampleCpu(groups);
      results.cpuAtRestPerSecond = cpuPerRound(restStart, restEnd, (restEnd.at - restStart.at) / 1000);
      log(`cluster: CPU ms per second at rest: ${Object.entries(results.cpuAtRestPerSecond).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      // Warm (bench/env.ts, `warmup`): the controllers' code tiers up over the first ~2,000 ops.
      for (let i = 0; i < WARMUP / 2; i++) {
        await hostnameOnce(first.ops, pick(others, i + OPS)).catch(() => undefined);
        await hostnameOnce(first.ops, pick(own, i + OPS)).catch(() => undefined);
      }
      const routed: number[] = [];
      const local: number[] = [];
      // An op that fails (its agent dropped meanwhile: a herd still connecting on a starved
      // machine) is counted, not timed; the first few are logged.
      const timed = async (samples: number[], agentId: string): Promise<void> => {
        try {
          samples.push(await hostnameOnce(first.ops, agentId));
        } catch (error) {
          results.failedOps++;
          if (results.failedOps <= 3) log(`cluster: hostname failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      };
      const healthz: number[] = [];
      const storeRead: number[] = [];
      let lastId: string | null = null;
      const get = async (samples: number[], path: string): Promise<void> => {
        const t0 = performance.now();
        const status = await first.ops.get(path);
        if (status === 200) samples.push(performance.now() - t0);
      };
      const loop = async (): Promise<void> => {
        for (let i = 0; i < OPS; i++) {
          await timed(routed, pick(others, i));
          await timed(local, pick(own, i));
          await get(healthz, '/healthz').catch(() => undefined);
          lastId ??= (await first.client.operations({ limit: 1 }).catch(() => []))[0]?.id ?? null;
          if (lastId !== null) await get(storeRead, `/api/operations/${lastId}`).catch(() => undefined);
        }
      };
      const cpuBefore = sampleCpu(groups);
      await whileProfiled(members, 'cluster', loop);
      results.cpuPerRound = cpuPerRound(cpuBefore, sampleCpu(groups), OPS);
      if (SPLIT) {
        // Diagnostics: each kind of call alone, CPU per call by process (not in the results).
        const kinds: Array<[string, (i: number) => Promise<unknown>]> = [
          ['routed', (i) => hostnameOnce(first.ops, pick(others, i))],
          ['local', (i) => hostnameOnce(first.ops, pick(own, i))],
          ['healthz', () => first.ops.get('/healthz')],
          ['one-row GET', () => (lastId === null ? Promise.resolve() : first.ops.get(`/api/operations/${lastId}`))],
        ];
        for (const [kind, call] of kinds) {
          const before = sampleCpu(groups);
          const samples: number[] = [];
          const calls = async (): Promise<void> => {
            for (let i = 0; i < OPS; i++) {
              const t0 = performance.now();
              await call(i);
              samples.push(performance.now() - t0);
            }
          };
          await whileProfiled(members, `split-${kind.replaceAll(/\W+/g, '-')}`, calls);
          const per = cpuPerRound(before, sampleCpu(groups), OPS);
          log(`cluster: ${kind} alone: p50 ${latencyOf(samples)?.p50Ms} ms; CPU ms per call: ${Object.entries(per).map(([k, v]) => `${k} ${v}`).join(', ')}`);
        }
      }
      results.routed = latencyOf(routed);
      results.local = latencyOf(local);
      results.floor = { healthz: latencyOf(healthz), storeRead: latencyOf(storeRead) };
      log(`cluster: hostname routed p50 ${results.routed?.p50Ms} / p99 ${results.routed?.p99Ms} ms; on the holder p50 ${results.local?.p50Ms} / p99 ${results.local?.p99Ms} ms`);
      log(`cluster: CPU ms per round (routed op, local op, /healthz, one-row GET): ${Object.entries(results.cpuPerRound).map(([k, v]) => `${k} ${v}`).join(', ')}`);
      log(`cluster: on controller 1 meanwhile GET /healthz p50 ${results.floor.healthz?.p50Ms} ms, GET /api/operations/:id (one PostgreSQL read) p50 ${results.floor.storeRead?.p50Ms} ms`);
    } catch (error) {
      noteFailure('latency', error);
    }

    // 3. SIGKILL controller 1: its agents go down their lists to the others. The kill waits until
    // the fleet has been at rest for one herd spread (admission counts a herd over the last 20 s:
    // the survivors' own agents, welcomed in the waves just before, would otherwise count as part
    // of the returning herd; docs/reliability.md, "Admission").
    const lastWelcome = Math.max(...fleets.flatMap((f) => [...f.welcomes.values()].map((times) => times.at(-1) ?? 0)));
    const restUntil = lastWelcome + AT_REST_BEFORE_KILL_MS;
    if (Date.now() < restUntil) await delay(restUntil - Date.now());
    const victim = first;
    // Asked again just before the kill: on a machine where the herd still churns, holders change.
    const victimIds = (await holders()).own;
    const before = new Map(victimIds.map((id) => [id, welcomesOf(id).length]));
    const killedAt = Date.now();
    process.kill(-victim.proc.pid, 'SIGKILL');
    await victim.proc.exited;
    results.restBeforeKillSeconds = Math.round((killedAt - lastWelcome) / 100) / 10;
    log(`cluster: controller 1 SIGKILLed ${results.restBeforeKillSeconds} s after the last welcome; waiting for its ${victimIds.length} agents`);
    const backAt = (id: string): number | null => {
      const times = welcomesOf(id);
      return times.length > before.get(id)! ? times[before.get(id)!]! : null;
    };
    let back = 0;
    while (Date.now() - killedAt < FAILOVER_LIMIT_MS) {
      back = victimIds.filter((id) => backAt(id) !== null).length;
      if (back === victimIds.length) break;
      await delay(200);
    }
    const times = victimIds.map(backAt).filter((t): t is number => t !== null);
    // The same welcomes by when the survivors sent them (each welcome carries its controller's
    // clock; one host, one clock): what the controllers did, without the starved simulator's
    // delay in reading them, which on this 2-core machine stamps several seconds' welcomes with one.
    const sentTimes = victimIds.flatMap((id) => {
      const sent = fleets.find((f) => f.welcomesSent.has(id))?.welcomesSent.get(id) ?? [];
      return sent.length > before.get(id)! ? [sent[before.get(id)!]!] : [];
    });
    const bySecond = (list: number[]): number[] => {
      const perSecond: number[] = [];
      for (const t of list) {
        const s = Math.max(0, Math.floor((t - killedAt) / 1000));
        while (perSecond.length <= s) perSecond.push(0);
        perSecond[s]!++;
      }
      return perSecond;
    };
    const perSecond = bySecond(sentTimes);
    const readPerSecond = bySecond(times);
    const share = (list: number[]): number | null => (list.length > 0 ? Math.round((Math.max(...list) / victimIds.length) * 1000) / 10 : null);
    const survivors = members.slice(1);
    results.failover = {
      victimAgents: victimIds.length,
      back: times.length,
      backSeconds: times.length === victimIds.length && times.length > 0 ? Math.round((Math.max(...times) - killedAt) / 100) / 10 : null,
      busiestSecondShare: share(perSecond),
      perSecond,
      busiestReadSecondShare: share(readPerSecond),
      readPerSecond,
      welcomesHeld: await Promise.all(survivors.map((m) => metric(m, 'seedwire_agent_welcomes_held_total'))),
      heldAfter: await Promise.all(survivors.map((m) => metric(m, 'seedwire_cluster_agents_held'))),
    };
    log(
      `cluster: ${times.length} of ${victimIds.length} back${results.failover.backSeconds === null ? '' : ` in ${results.failover.backSeconds} s`}; busiest second ${results.failover.busiestSecondShare}% as the survivors sent the welcomes (${results.failover.busiestReadSecondShare}% as the simulator read them); welcomes held ${results.failover.welcomesHeld.join(' / ')}; held after ${results.failover.heldAfter.join(' / ')}`,
    );

    // 4. A running seed whose owner is SIGKILLed, on the two survivors and a fresh third, with the
    // fleet stopped: the seed's agents are real ones and its adoption waits on a lease (15 s).
    await Promise.all(fleets.map((f) => f.stop()));
    const alive = members.filter((m) => m.proc.alive());
    const startOwner = async (): Promise<Member> => {
      const owner = await startMember(CONTROLLERS + 1, token, adminToken, store, nats!.url);
      members.push(owner);
      return owner;
    };
    results.seedAdoption = await measureSeedAdoption(startOwner, alive, token, log);
  } catch (error) {
    noteFailure('cluster', error);
  } finally {
    await Promise.all(fleets.map((f) => f.stop()));
    for (const m of members) {
      if (m.proc.alive()) await stopTracked(m.proc, 30_000);
      removeTemp(m.dataDir);
    }
    await stopEngines();
    dropCleanup();
  }
  return results;
}

/**
 * Runs `fn`; with SEEDWIRE_BENCH_PROFILE, while controllers 1 and 2 are profiled, into
 * DIR/PREFIX-controller-N.cpuprofile.
 */
async function whileProfiled(members: Member[], prefix: string, fn: () => Promise<void>): Promise<void> {
  if (PROFILE_DIR === null) return fn();
  mkdirSync(PROFILE_DIR, { recursive: true });
  const profile = members.slice(0, 2).reduceRight<() => Promise<void>>((inner, m) => () => profileWhile(m.proc.pid, join(PROFILE_DIR, `${prefix}-controller-${m.n}.cpuprofile`), inner, m.inspectPort!), fn);
  return profile();
}

type CpuGroups = Record<string, () => number[]>;

/** The processes whose CPU the timed loop tallies: the bench itself, each controller, the simulator, nats-server, PostgreSQL. */
function cpuGroups(members: Member[], fleets: Array<ReturnType<typeof startFleet>>, pg: PostgresServer, nats: NatsServer): CpuGroups {
  const groups: CpuGroups = { bench: () => [process.pid] };
  for (const m of members) groups[`controller ${m.n}`] = () => [m.proc.pid];
  groups['simulator'] = () => fleets.flatMap((f) => [...f.pids]);
  const natsPid = findPid((cmd) => cmd.includes('nats-server') && cmd.includes(`-p ${nats.port}`));
  if (natsPid !== null) groups['nats'] = () => [natsPid];
  const postmaster = Number(readFileSync(join(pg.baseDir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  if (Number.isInteger(postmaster) && postmaster > 0) groups['postgres'] = () => withChildren(postmaster);
  return groups;
}

interface CpuSample {
  at: number;
  groups: Record<string, number>;
  idleMs: number | null;
  stealMs: number | null;
}

function sampleCpu(groups: CpuGroups): CpuSample {
  const idle = machineIdleSeconds();
  const steal = stealSeconds();
  return {
    at: performance.now(),
    groups: Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, groupCpuMs(pids())])),
    idleMs: idle === null ? null : idle * 1000,
    stealMs: steal === null ? null : steal * 1000,
  };
}

/** CPU ms per round for each group, plus the machine's idle and stolen ms per round (all cores). */
function cpuPerRound(before: CpuSample, after: CpuSample, rounds: number): Record<string, number> {
  const per = (ms: number): number => Math.round((ms / rounds) * 100) / 100;
  const out: Record<string, number> = { 'wall ms': per(after.at - before.at) };
  for (const name of Object.keys(before.groups)) out[name] = per(after.groups[name]! - before.groups[name]!);
  if (before.idleMs !== null && after.idleMs !== null) out['idle (all cores)'] = per(after.idleMs - before.idleMs);
  if (before.stealMs !== null && after.stealMs !== null) out['stolen'] = per(after.stealMs - before.stealMs);
  return out;
}

/** Rows for the bench's details table. */
export function clusterRows(r: ClusterBenchResults | null): Array<[string, string]> {
  if (r === null) return [['— cluster (SEEDWIRE_BENCH_CLUSTER_AGENTS=0: skipped)', '']];
  const f = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'n/a' : `${v}${unit}`);
  const lat = (l: FleetLatency | null): string => (l ? `p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms, max ${l.maxMs} ms (n ${l.n})` : 'n/a');
  const rows: Array<[string, string]> = [[`— three controllers on PostgreSQL and NATS (${r.controllers} × ${r.agentsPerController} agents; load at start ${r.loadAvgAtStart.join(' ')})`, '']];
  rows.push([`${r.agents} agents connect (${r.waves} waves)`, r.connectSeconds === null ? `not all: ${r.connected}` : `all in ${r.connectSeconds} s`]);
  rows.push(['RSS per controller at rest / peak connecting', `${r.rssMiB.map((v) => f(v)).join(' / ')} / ${r.peakConnectingMiB.map((v) => f(v)).join(' / ')} MiB (target ≤ 400 MB)`]);
  rows.push(['agents held per controller', r.held.map((v) => f(v)).join(' / ')]);
  rows.push(['hostname routed through another controller', `${lat(r.routed)}   (target p50 ≤ 3, p99 ≤ 15 ms)`]);
  rows.push(['hostname on the holder (same controller)', `${lat(r.local)}${r.failedOps > 0 ? `; ${r.failedOps} ops failed` : ''}`]);
  rows.push(['  meanwhile: GET /healthz / GET /api/operations/:id', `${lat(r.floor.healthz)} / ${lat(r.floor.storeRead)}`]);
  if (r.cpuAtRestPerSecond) rows.push(['  CPU ms per second at rest', Object.entries(r.cpuAtRestPerSecond).map(([k, v]) => `${k} ${v}`).join(', ')]);
  if (r.cpuPerRound) rows.push(['  CPU ms per round of the four', Object.entries(r.cpuPerRound).map(([k, v]) => `${k} ${v}`).join(', ')]);
  if (r.failover) {
    rows.push([`controller SIGKILLed: its ${r.failover.victimAgents} agents back`, `${r.failover.backSeconds === null ? `not all: ${r.failover.back}` : `all in ${r.failover.backSeconds} s`} (target ≤ 60 s); busiest second ${f(r.failover.busiestSecondShare, '%')} (target ≤ 10%)`]);
    rows.push(['  welcomes per second after the kill, as sent', r.failover.perSecond.join(' ')]);
    rows.push(['  the same as the simulator read them', `${r.failover.readPerSecond.join(' ')} (busiest ${f(r.failover.busiestReadSecondShare, '%')})`]);
    rows.push(['  held by the survivors after', r.failover.heldAfter.map((v) => f(v)).join(' / ')]);
  }
  const seed = r.seedAdoption;
  if (seed) {
    rows.push([
      `running seed, its owner SIGKILLed at ${seed.doneAtKill === null ? 'n/a' : `${Math.round(seed.doneAtKill * 100)}%`}`,
      `adopted after ${f(seed.adoptedSeconds, ' s')}, transfer running again after ${f(seed.resumedSeconds, ' s')} (target ≤ 60 s), ${seed.state ?? 'n/a'} after ${f(seed.endedSeconds, ' s')}`,
    ]);
    rows.push(['  its copy; bytes sent twice per resumed lane', `${seed.verified ?? 'not verified'}; ${seed.resentBytes.map((b) => `${(b / 2 ** 20).toFixed(1)} MiB`).join(', ') || 'none'} (bound ${seed.resendBoundBytes / 2 ** 20} MiB)`]);
    if (seed.note) rows.push(['  note', seed.note]);
  }
  if (r.note) rows.push(['  note', r.note]);
  return rows;
}
