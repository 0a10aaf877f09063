/**
 * createController: the controller core in one object (store, hub, event bus, operation runner,
 * HTTP API), listening on host:port. main.ts wraps it in a CLI; tests run it in-process.
 */
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { SeedwireError } from '../shared/errors.js';
import { LIMITS } from '../shared/limits.js';
import { installAdminAuth } from './api/auth.js';
import { registerAgentRoutes } from './api/agents.js';
import { registerIdentityRoutes } from './api/identity.js';
import { acceptEmptyJsonBodies } from './api/body.js';
import { trackConnections } from './api/connections.js';
import { installErrorHandlers } from './api/errors.js';
import { createMetricsRegistry, registerMetricsRoute } from './api/metrics.js';
import { registerMiscRoutes } from './api/misc.js';
import { registerOperationRoutes } from './api/operations.js';
import { agentEventView, viewAgentEvent } from './api/views.js';
import { createEventBus } from './events/bus.js';
import { registerEventsRoute } from './events/sse.js';
import type { ExposureOptions } from './hub/exposure.js';
import type { AdmissionOptions } from './hub/admission.js';
import { CONTROLLER_LIMITS } from './limits.js';
import { createEventsSocket } from './events/ws.js';
import { createAgentHub } from './hub/hub.js';
import { checkAdvertiseUrl, createCluster, type Cluster } from './cluster/cluster.js';
import { parseBusUrl } from './cluster/link.js';
import { registerClusterMetrics } from './cluster/metrics.js';
import type { ClusterLimits } from './cluster/limits.js';
import { createAudit } from './ops/audit.js';
import { createOperationRunner } from './ops/runner.js';
import { openStore } from './store/open.js';
import type { SqliteStore } from './store/sqlite.js';
import type { Store } from './store/types.js';
import type { ControllerConfig, ControllerDeps, ControllerPlugin } from './types.js';

export type { ControllerConfig, ControllerDeps, ControllerPlugin } from './types.js';

export interface CreateControllerOptions {
  dataDir: string;
  /**
   * Where the controller keeps its state: absent, SQLite in `dataDir`; a `postgres://` URL, that
   * PostgreSQL database (cluster mode); or a store already open, which the controller then owns
   * (closed with it).
   */
  store?: string | Store | null;
  adminToken: string;
  /** The enrollment token (new agent ids enroll with it); at least one of agentToken / agentTokens is required. */
  agentToken?: string | null;
  agentTokens?: Record<string, string>;
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 0 (a free port) */
  port?: number;
  /** `clientCa`: verify agents' client certificates against it; a verified certificate's CN (or DNS SAN) is the agent id. */
  tls?: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer } | null;
  /** Rate limit of failed agent authentications, cap of connections waiting for a hello (defaults in hub/exposure.ts). */
  exposure?: Partial<ExposureOptions>;
  /** @default LIMITS.heartbeatMs */
  heartbeatMs?: number;
  /** @default LIMITS.deadAfterMs */
  deadAfterMs?: number;
  /** @default LIMITS.handshakeTimeoutMs */
  handshakeTimeoutMs?: number;
  /** @default LIMITS.drainMs */
  drainMs?: number;
  /** @default a silent logger */
  log?: Logger;
  /** Registered after the core routes, in order (seed routes, console). */
  plugins?: ControllerPlugin[];
  /** Pacing of new agent sessions; defaults in server-stub/hub/admission.ts. */
  admission?: Partial<AdmissionOptions>;
  /** Cluster mode: the NATS bus (nats://[user:pass@]host:port) that routes operations and events between controllers; null: a single controller. */
  bus?: string | null;
  /** Where agents and peer controllers reach this one; @default its listening URL. Only with `bus`. */
  advertiseUrl?: string | null;
  /** Cluster timings and bounds; defaults in server-stub/cluster/limits.ts. */
  clusterLimits?: Partial<ClusterLimits>;
}

export interface Controller {
  /** http(s)://host:port */
  url: string;
  /** ws(s)://host:port/agent */
  wsUrl: string;
  deps: ControllerDeps;
  app: FastifyInstance;
  /** Graceful drain, at most drainMs; idempotent. */
  close(): Promise<void>;
}

function resolveConfig(options: CreateControllerOptions): ControllerConfig {
  const agentTokens = options.agentTokens ?? {};
  const agentToken = options.agentToken ?? null;
  if (agentToken === null && Object.keys(agentTokens).length === 0) {
    throw new SeedwireError('SEEDWIRE_CONFIG', 'agentToken: required unless agentTokens names at least one agent');
  }
  if (!options.adminToken) throw new SeedwireError('SEEDWIRE_CONFIG', 'adminToken: required');
  if (options.bus) parseBusUrl(options.bus);
  if (options.advertiseUrl) {
    if (!options.bus) throw new SeedwireError('SEEDWIRE_CONFIG', '--advertise-url: only with --bus (cluster mode)');
    checkAdvertiseUrl(options.advertiseUrl);
  }
  return {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    dataDir: options.dataDir,
    agentToken,
    agentTokens,
    adminToken: options.adminToken,
    tls: options.tls ?? null,
    heartbeatMs: options.heartbeatMs ?? LIMITS.heartbeatMs,
    deadAfterMs: options.deadAfterMs ?? LIMITS.deadAfterMs,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? LIMITS.handshakeTimeoutMs,
    drainMs: options.drainMs ?? LIMITS.drainMs,
  };
}

/** With a client CA the server asks for a certificate but admits connections without one (tokens still work). */
function httpsOptions(tls: NonNullable<ControllerConfig['tls']>): Record<string, unknown> {
  if (tls.clientCa === undefined) return { cert: tls.cert, key: tls.key };
  return { cert: tls.cert, key: tls.key, ca: tls.clientCa, requestCert: true, rejectUnauthorized: false };
}

function formatUrl(scheme: string, host: string, port: number): string {
  const shown = host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${shown}:${port}`;
}

export async function createController(options: CreateControllerOptions): Promise<Controller> {
  const config = resolveConfig(options);
  const log = options.log ?? pino({ level: 'silent' });
  const store = typeof options.store === 'object' && options.store !== null ? options.store : await openStore({ dataDir: config.dataDir, url: options.store ?? null, log });
  const { agents, identities, output } = store;
  const bus = createEventBus({ log });
  const audit = createAudit(store.audit, bus);
  // Cluster mode: the controllers sharing the store's fleet, heard over the bus (set below).
  let controllersSharingFleet = (): number => 1;
  const hub = createAgentHub({
    controllers: () => controllersSharingFleet(),
    credentials: { shared: config.agentToken, perAgent: config.agentTokens },
    timing: { heartbeatMs: config.heartbeatMs, deadAfterMs: config.deadAfterMs, handshakeTimeoutMs: config.handshakeTimeoutMs },
    agents,
    identities,
    audit,
    ...(options.exposure ? { exposure: options.exposure } : {}),
    log: log.child({ component: 'hub' }),
    ...(options.admission ? { admission: options.admission } : {}),
  });
  // A read-only operation's first rows wait for its quick reply only where each write is a network round trip.
  const deferStartMs = store.kind === 'postgres' ? CONTROLLER_LIMITS.opStartDeferMs : 0;
  const operations = createOperationRunner({ hub, store, bus, audit, log: log.child({ component: 'ops' }), deferStartMs });
  hub.setResumeHandler((agentId, hello) => operations.prepareResume(agentId, hello));
  // Events are published in the order the hub emitted them. A connect carries its agent (identity
  // as read at the welcome) and is published at once, before anything that follows it (its
  // enrollment's audit row). Disconnects, facts and identity changes read the store, one view at a
  // time (a revoke ends the session: its identity read at the welcome is stale by then), and what
  // comes while one is read waits behind it.
  let agentEvents: Promise<void> = Promise.resolve();
  let agentEventsWaiting = 0;
  hub.on((event) => {
    if (event.type === 'agent-connected' && event.agent.identity && agentEventsWaiting === 0) {
      bus.publish('agent', agentEventView(event.agent, hub.facts(event.agent.id)));
      return;
    }
    const agentId = event.type === 'facts' || event.type === 'identity' ? event.agentId : event.agent.id;
    agentEventsWaiting++;
    agentEvents = agentEvents
      .then(async () => {
        const view = await viewAgentEvent(hub, agentId);
        if (view) bus.publish('agent', view);
      })
      .catch((error: unknown) => log.warn({ err: error, agentId }, 'could not publish an agent event'))
      .finally(() => {
        agentEventsWaiting--;
      });
  });
  let cluster: Cluster | null = null;
  const startedHooks: Array<() => Promise<void> | void> = [];
  const deps: ControllerDeps = { store, hub, bus, audit, operations, log, config, cluster, onStarted: (fn) => startedHooks.push(fn) };

  const app = Fastify({
    loggerInstance: log.child({ component: 'http' }),
    logController: new LogController({ disableRequestLogging: true }),
    // request.log is the http logger itself, not a pino child per request (its bindings and
    // redaction set up on every API call, for two lines that rarely happen: they name the request id).
    childLoggerFactory: (logger) => logger,
    bodyLimit: 64 * 1024,
    forceCloseConnections: 'idle',
    ...(config.tls ? { https: httpsOptions(config.tls) } : {}),
  }) as unknown as FastifyInstance;
  installErrorHandlers(app);
  acceptEmptyJsonBodies(app);
  installAdminAuth(app, config.adminToken);
  registerMiscRoutes(app, deps);
  registerAgentRoutes(app, deps);
  registerIdentityRoutes(app, { hub, audit, announceRevoked: (agentId) => deps.cluster?.presence.announceRevoked(agentId) });
  // In cluster mode viewers follow the fleet bus (every controller's events); the local bus stays this controller's.
  const fleetBus = options.bus ? createEventBus({ log }) : null;
  const followers = registerOperationRoutes(app, deps, bus, output, fleetBus);
  const viewers = registerEventsRoute(app, fleetBus ?? bus, log.child({ component: 'sse' }));
  const consoleFeed = createEventsSocket({ bus: fleetBus ?? bus, adminToken: config.adminToken, log: log.child({ component: 'events-ws' }) });
  // /metrics counts the viewers of both transports (SSE and the console's WebSocket) together.
  const allViewers = {
    count: () => viewers.count() + consoleFeed.count(),
    drops: () => ({ gaps: viewers.drops().gaps + consoleFeed.stats.gaps, events: viewers.drops().events + consoleFeed.stats.droppedEvents }),
  };
  const metrics = createMetricsRegistry({ store: { operations: store.operations, seeds: store.seeds }, counters: hub.counters, connectedAgents: () => hub.connectedCount(), pendingHandshakes: () => hub.pendingHandshakes(), bus, viewers: allViewers, checkpointer: (store as Partial<SqliteStore>).checkpointer ?? null });
  registerMetricsRoute(app, metrics.registry);
  const disposers: Array<() => Promise<void> | void> = [];
  for (const plugin of options.plugins ?? []) {
    const dispose = await plugin(app, deps);
    if (typeof dispose === 'function') disposers.push(dispose);
  }
  app.server.on('upgrade', (req, socket, head) => (consoleFeed.handles(req) ? consoleFeed.handleUpgrade(req, socket, head) : hub.handleUpgrade(req, socket, head)));
  const connections = trackConnections(app.server);

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    metrics.dispose();
    await hub.close();
    await store.close();
    throw new SeedwireError('SEEDWIRE_CONFIG', `listen: cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`, { cause: error });
  }
  const address = app.server.address() as AddressInfo;
  const url = formatUrl(config.tls ? 'https' : 'http', config.host, address.port);
  const wsUrl = `${formatUrl(config.tls ? 'wss' : 'ws', config.host, address.port)}/agent`;
  if (options.bus && fleetBus) {
    // After listen: the advertise URL defaults to the bound one, and no agent can connect before this.
    cluster = createCluster(
      { busUrl: options.bus, advertiseUrl: options.advertiseUrl ?? url, ...(options.clusterLimits ? { limits: options.clusterLimits } : {}) },
      { hub, operations, audit, bus, fleetBus, readOutput: (id) => output.readText(id), endRevoked: (agentId) => hub.revoke(agentId), log },
    );
    deps.cluster = cluster;
    const members = cluster.members;
    controllersSharingFleet = () => members.count();
    registerClusterMetrics(metrics.registry, cluster);
  }
  for (const hook of startedHooks) await hook();

  let closing: Promise<void> | null = null;
  async function drain(): Promise<void> {
    // Plugins first (the seed machine parks its seeds), while agent links are still up.
    for (const dispose of disposers) await dispose();
    operations.close();
    viewers.closeAll();
    consoleFeed.closeAll();
    followers.closeAll();
    await hub.close();
    await operations.drain();
    // After the runner drained: the ends of operations run for other controllers still go out.
    await cluster?.close();
    const closed = app.close();
    connections.closeIdle();
    await closed;
  }
  function close(): Promise<void> {
    closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.drainMs);
      });
      try {
        const outcome = await Promise.race([drain().then(() => 'drained' as const), timeout]);
        if (outcome === 'timeout') {
          log.warn({ drainMs: config.drainMs }, 'drain took too long; closing connections');
          app.server.closeAllConnections();
        }
      } catch (error) {
        log.error({ err: error }, 'drain failed');
      } finally {
        clearTimeout(timer);
        metrics.dispose();
        await agentEvents;
        await cluster?.close();
        fleetBus?.dispose();
        bus.dispose();
        await store.close().catch((error: unknown) => log.error({ err: error }, 'closing the store failed'));
      }
    })();
    return closing;
  }

  return { url, wsUrl, deps, app, close };
}
