/**
 * A real cluster for tests: one PostgreSQL (test/helpers/postgres.ts: a temp dir, a free port),
 * one nats-server (test/helpers/nats.ts), N controllers on both, each with `--store postgres://...
 * --bus nats://... --advertise-url`, and real agents whose `controller` lists spread them across
 * the controllers. A controller is a real process (`process: true`: a test may SIGKILL it) or runs
 * in this process (cheaper; everything but the kill). `stop()` stops and removes everything, in
 * that order: agents, controllers, NATS, PostgreSQL; call it in afterAll so a failed test cleans
 * up too. In CI a missing binary fails (requirements.ts): `missingClusterTools()` throws there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createController, type Controller, type CreateControllerOptions } from '../../server-stub/app.js';
import type { ClusterLimits } from '../../server-stub/cluster/limits.js';
import { startAgent, type AgentProcess } from './agent.js';
import { startController, type RunningController } from './controller.js';
import { startNatsServer, type NatsServer } from './nats.js';
import { missingPostgres, startPostgres, type PostgresServer } from './postgres.js';
import { missingTools } from './requirements.js';
import { waitFor } from './wait.js';

/** null when PostgreSQL and nats-server are installed; else the reason (in CI: throws). */
export function missingClusterTools(): string | null {
  return missingPostgres() ?? missingTools(['nats-server']);
}

export interface ClusterMember {
  /** 1-based, as tests name them ("controller 1"). */
  readonly n: number;
  readonly url: string;
  readonly wsUrl: string;
  /** The in-process controller, or null for a process. */
  readonly inProcess: Controller | null;
  /** The controller process, or null when it runs in this process. */
  readonly process: RunningController | null;
  api(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response>;
  /** Whether this controller holds the agent's session now (from its API: an in-process hub, or presence). */
  holds(agentId: string): Promise<boolean>;
  /** SIGKILL (process members only) and wait for the exit. */
  kill(): Promise<void>;
  readonly alive: boolean;
}

export interface StartClusterOptions {
  /** How many controllers (default 3). */
  controllers?: number;
  /** Which of them (1-based) run as processes; the others in-process (default none). */
  processes?: number[];
  adminToken: string;
  agentToken: string;
  /** In-process controllers only (processes use the defaults; no flag sets them). */
  clusterLimits?: Partial<ClusterLimits>;
  /** Extra options of in-process controllers (heartbeat, dead-after...). */
  inProcessOptions?: Partial<CreateControllerOptions>;
  /** Extra flags of controller processes. */
  processArgs?: string[];
}

export interface TestCluster {
  readonly postgres: PostgresServer;
  readonly nats: NatsServer;
  /** postgres://... of the cluster's database. */
  readonly storeUrl: string;
  readonly database: string;
  readonly members: ClusterMember[];
  member(n: number): ClusterMember;
  /**
   * A real agent whose controller list starts at controller `first` and goes round the others
   * (so each agent fails over to the next one).
   */
  startAgent(id: string, first: number, config?: Record<string, unknown>): AgentProcess;
  /** Which member holds the agent now (null: none), asked of every live member. */
  holderOf(agentId: string): Promise<ClusterMember | null>;
  /** Every live member's bus link is up (in-process: checked and flushed; processes: metrics). */
  settled(): Promise<void>;
  /** Rows of the cluster's database. */
  query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

function apiCall(url: string, token: string, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(signal ? { signal } : {}),
  });
}

async function metricValue(res: Response, name: string): Promise<number | null> {
  const match = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(await res.text());
  return match ? Number(match[1]) : null;
}

export async function startCluster(options: StartClusterOptions): Promise<TestCluster> {
  const count = options.controllers ?? 3;
  const processes = new Set(options.processes ?? []);
  const members: ClusterMember[] = [];
  const agents: AgentProcess[] = [];
  const dataDirs: string[] = [];
  let postgres: PostgresServer | null = null;
  let nats: NatsServer | null = null;
  let stopped = false;

  async function stop(): Promise<void> {
    if (stopped) return;
    stopped = true;
    await Promise.all(agents.splice(0).map((agent) => agent.kill()));
    await Promise.all(
      members.map(async (member) => {
        if (member.process) {
          await member.process.kill();
          member.process.cleanup();
        } else await member.inProcess?.close();
      }),
    );
    for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    await nats?.dispose();
    await postgres?.stop();
  }

  try {
    [postgres, nats] = await Promise.all([startPostgres(), startNatsServer()]);
    const database = `cluster_${process.pid}_${Date.now()}`;
    const storeUrl = await postgres.createDatabase(database);
    const pg = postgres;
    const bus = nats;
    // One at a time: the first migrates the database, the others find it migrated.
    for (let n = 1; n <= count; n++) {
      const port = await freePort();
      const advertiseUrl = `http://127.0.0.1:${port}`;
      if (processes.has(n)) {
        const proc = await startController({
          agentToken: options.agentToken,
          adminToken: options.adminToken,
          listen: `127.0.0.1:${port}`,
          env: { SEEDWIRE_STORE: storeUrl, SEEDWIRE_BUS: bus.url },
          extraArgs: ['--advertise-url', advertiseUrl, ...(options.processArgs ?? [])],
          startTimeoutMs: 60_000,
        });
        members.push({
          n,
          url: proc.url,
          wsUrl: proc.wsUrl,
          inProcess: null,
          process: proc,
          api: (method, path, body, signal) => apiCall(proc.url, options.adminToken, method, path, body, signal),
          // A process's hub is not reachable from here: its own metrics say how many it holds, not which.
          holds: async (agentId) => {
            const res = await apiCall(proc.url, options.adminToken, 'GET', `/api/agents/${encodeURIComponent(agentId)}`);
            if (res.status !== 200) return false;
            const detail = (await res.json()) as { connected: boolean; holder?: string | null };
            return detail.connected && detail.holder === advertiseUrl;
          },
          kill: () => proc.kill(),
          get alive() {
            return proc.process.exitCode === null && proc.process.signalCode === null;
          },
        });
      } else {
        const dataDir = mkdtempSync(join(tmpdir(), `seedwire-cluster-${n}-`));
        dataDirs.push(dataDir);
        const controller = await createController({
          dataDir,
          store: storeUrl,
          bus: bus.url,
          advertiseUrl,
          port,
          adminToken: options.adminToken,
          agentToken: options.agentToken,
          ...(options.clusterLimits ? { clusterLimits: options.clusterLimits } : {}),
          ...options.inProcessOptions,
        });
        let closed = false;
        members.push({
          n,
          url: controller.url,
          wsUrl: controller.wsUrl,
          inProcess: controller,
          process: null,
          api: (method, path, body, signal) => apiCall(controller.url, options.adminToken, method, path, body, signal),
          holds: (agentId) => Promise.resolve(!closed && controller.deps.hub.isConnected(agentId)),
          kill: () => {
            closed = true;
            return controller.close();
          },
          get alive() {
            return !closed;
          },
        });
      }
    }
    const cluster: TestCluster = {
      postgres: pg,
      nats: bus,
      storeUrl,
      database,
      members,
      member(n) {
        const found = members[n - 1];
        if (!found) throw new Error(`no controller ${n} in a cluster of ${members.length}`);
        return found;
      },
      startAgent(id, first, config = {}) {
        const order = members.map((_, i) => members[(first - 1 + i) % members.length]!.wsUrl);
        const agent = startAgent({ controllerUrl: order[0]!, token: options.agentToken, id, config: { allowArbitraryCommands: true, ...config, controller: order } });
        agents.push(agent);
        return agent;
      },
      async holderOf(agentId) {
        for (const member of members) if (member.alive && (await member.holds(agentId))) return member;
        return null;
      },
      async settled() {
        await waitFor(
          async () => {
            for (const member of members) {
              if (!member.alive) continue;
              if (member.inProcess) {
                if (member.inProcess.deps.cluster?.link.connected() !== true) return false;
              } else if ((await metricValue(await member.api('GET', '/metrics'), 'seedwire_cluster_bus_connected')) !== 1) return false;
            }
            return true;
          },
          { timeoutMs: 30_000, intervalMs: 100, what: 'every controller connected to NATS' },
        );
        const flushes: Array<Promise<void>> = [];
        for (const member of members) {
          const connection = member.alive ? member.inProcess?.deps.cluster?.link.connection() : null;
          if (connection) flushes.push(connection.flush());
        }
        await Promise.all(flushes);
      },
      query: (sql, params) => pg.query(database, sql, params),
      stop,
    };
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}
