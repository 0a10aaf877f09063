/**
 * GET /metrics: Prometheus text from a registry owned by this controller (never the global one),
 * covering what on-call graphs: agents and their reconnects, heartbeat round trips, operations by
 * op and outcome, seeds by state with their bytes and rate, rejected frames, event viewers and
 * their drops, and the controller's event-loop delay. Counters kept elsewhere (hub, SSE) are read
 * at scrape time; operation and seed outcomes are counted from the event bus as they happen.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SseViewers } from '../events/sse.js';
import type { EventBus } from '../events/types.js';
import type { SeedStore } from '../seed/store.js';
import type { OperationStore } from '../store/operations.js';
import type { HubCounters } from '../hub/counters.js';
import type { Checkpointer } from '../store/checkpointer.js';
import { CONTROLLER_LIMITS } from '../limits.js';

export interface MetricsSources {
  /** The store's counts by state. */
  store: { operations: Pick<OperationStore, 'countByState'>; seeds: Pick<SeedStore, 'countByState'> };
  counters: HubCounters;
  connectedAgents(): number;
  /** Agent handshakes under way (what the controller's cap on pending handshakes counts). */
  pendingHandshakes(): number;
  bus: EventBus;
  viewers: Pick<SseViewers, 'count' | 'drops'>;
  /** The SQLite store's checkpoint thread (null: PostgreSQL, or checkpoints left to SQLite). */
  checkpointer?: Pick<Checkpointer, 'active' | 'runs' | 'last'> | null;
}

export interface ControllerMetrics {
  registry: Registry;
  /** Stops the event-loop monitor and the bus subscription (controller close). */
  dispose(): void;
}

const OPERATION_STATES = ['running', 'succeeded', 'failed', 'canceled'] as const;
const SEED_STATES = ['pending', 'running', 'succeeded', 'failed', 'aborted'] as const;

function setCounter(counter: Counter<string>, value: number, labels?: Record<string, string>): void {
  if (labels) {
    counter.remove(labels);
    counter.inc(labels, value);
  } else {
    counter.reset();
    counter.inc(value);
  }
}

/** A bounded set: the oldest entries fall out first. */
function rememberer(limit: number): (id: string) => boolean {
  const seen = new Set<string>();
  return (id) => {
    if (seen.has(id)) return false;
    seen.add(id);
    if (seen.size > limit) seen.delete(seen.values().next().value!);
    return true;
  };
}

export function createMetricsRegistry(sources: MetricsSources): ControllerMetrics {
  const registry = new Registry();
  const { counters } = sources;

  new Gauge({
    name: 'seedwire_agents_connected',
    help: 'Agents with an open session',
    registers: [registry],
    collect() {
      this.set(sources.connectedAgents());
    },
  });
  new Counter({
    name: 'seedwire_agent_sessions_total',
    help: 'Agent sessions accepted (hello welcomed)',
    registers: [registry],
    collect() {
      setCounter(this, counters.sessions);
    },
  });
  new Counter({
    name: 'seedwire_agent_reconnects_total',
    help: 'Sessions of agents that had connected before (redials after a drop, a restart of either side)',
    registers: [registry],
    collect() {
      setCounter(this, counters.reconnects);
    },
  });
  new Counter({
    name: 'seedwire_agent_disconnects_total',
    help: 'Agent sessions that ended',
    registers: [registry],
    collect() {
      setCounter(this, counters.disconnects);
    },
  });
  const rtt = new Histogram({
    name: 'seedwire_heartbeat_rtt_seconds',
    help: 'Heartbeat round trip between the controller and its agents (ping to pong)',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  counters.observeHeartbeatRtt = (seconds) => rtt.observe(seconds);

  new Gauge({
    name: 'seedwire_operations',
    help: 'Operations in the store by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const rows = await sources.store.operations.countByState();
      this.reset();
      for (const state of OPERATION_STATES) this.set({ state }, 0);
      for (const row of rows) this.set({ state: row.state }, row.n);
    },
  });
  const operationsEnded = new Counter({
    name: 'seedwire_operations_ended_total',
    help: 'Operations that ended, by operation and outcome (succeeded, failed, canceled)',
    labelNames: ['op', 'outcome'],
    registers: [registry],
  });

  new Gauge({
    name: 'seedwire_seeds',
    help: 'Seeds in the store by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const rows = await sources.store.seeds.countByState();
      this.reset();
      for (const state of SEED_STATES) this.set({ state }, 0);
      for (const row of rows) this.set({ state: row.state }, row.n);
    },
  });
  const seedsEnded = new Counter({
    name: 'seedwire_seeds_ended_total',
    help: 'Seeds that ended, by outcome (succeeded, failed, aborted)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const seedBytes = new Counter({
    name: 'seedwire_seed_bytes_total',
    help: 'Seed bytes committed by targets (progress as the seeds report it; a resume does not count twice)',
    registers: [registry],
  });
  const seedRates = new Map<string, number>();
  const seedDone = new Map<string, number>();
  new Gauge({
    name: 'seedwire_seed_bytes_per_second',
    help: 'Sum of the transfer rates of running seeds',
    registers: [registry],
    collect() {
      let sum = 0;
      for (const rate of seedRates.values()) sum += rate;
      this.set(sum);
    },
  });
  new Gauge({
    name: 'seedwire_seeds_transferring',
    help: 'Seeds reporting transfer progress now',
    registers: [registry],
    collect() {
      this.set(seedRates.size);
    },
  });

  new Counter({
    name: 'seedwire_relay_bytes_total',
    help: 'Bytes of stream data relayed between agents',
    registers: [registry],
    collect() {
      setCounter(this, counters.bytesRelayed);
    },
  });
  new Counter({
    name: 'seedwire_relay_dropped_frames_total',
    help: 'Data frames dropped by the relay (no route, target offline, window exceeded)',
    registers: [registry],
    collect() {
      setCounter(this, counters.relayDropped);
    },
  });
  new Counter({
    name: 'seedwire_relay_control_data_frames_total',
    help: "Data frames that arrived on agents' control sockets (streams of agents without data connections)",
    registers: [registry],
    collect() {
      setCounter(this, counters.controlDataFrames);
    },
  });
  new Counter({
    name: 'seedwire_data_connections_total',
    help: 'Data connections accepted (two per stream that uses them)',
    registers: [registry],
    collect() {
      setCounter(this, counters.dataConnections);
    },
  });
  new Counter({
    name: 'seedwire_data_connections_refused_total',
    help: 'Data connection upgrades refused (unknown, used, expired or misdirected stream tokens)',
    registers: [registry],
    collect() {
      setCounter(this, counters.dataRefused);
    },
  });
  new Counter({
    name: 'seedwire_ws_frames_total',
    help: 'WebSocket frames exchanged with agents',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      setCounter(this, counters.framesIn, { direction: 'in' });
      setCounter(this, counters.framesOut, { direction: 'out' });
    },
  });
  new Counter({
    name: 'seedwire_bad_frames_total',
    help: 'Frames from agents that failed to parse or validate (rejected)',
    registers: [registry],
    collect() {
      setCounter(this, counters.badFrames);
    },
  });

  new Gauge({
    name: 'seedwire_event_viewers',
    help: 'Open /api/events streams (console tabs, scripts)',
    registers: [registry],
    collect() {
      this.set(sources.viewers.count());
    },
  });
  new Counter({
    name: 'seedwire_event_viewer_gaps_total',
    help: 'Times an event viewer fell behind and was sent a gap instead of the events it missed',
    registers: [registry],
    collect() {
      setCounter(this, sources.viewers.drops().gaps);
    },
  });
  new Counter({
    name: 'seedwire_event_viewer_dropped_events_total',
    help: 'Events not sent to viewers that had fallen behind',
    registers: [registry],
    collect() {
      setCounter(this, sources.viewers.drops().events);
    },
  });

  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  new Gauge({
    name: 'seedwire_event_loop_delay_seconds',
    help: 'Event-loop delay of the controller since the previous scrape (p50, p99, max)',
    // Not `quantile`: Prometheus reserves that label for summaries (promtool refuses it on a gauge).
    labelNames: ['stat'],
    registers: [registry],
    collect() {
      const seconds = (ns: number): number => (Number.isFinite(ns) ? ns / 1e9 : 0);
      this.set({ stat: 'p50' }, seconds(loopDelay.percentile(50)));
      this.set({ stat: 'p99' }, seconds(loopDelay.percentile(99)));
      this.set({ stat: 'max' }, seconds(loopDelay.max));
      loopDelay.reset();
    },
  });
  new Counter({
    name: 'seedwire_agent_upgrades_paced_total',
    help: 'Agent upgrades answered 503 with a Retry-After by admission pacing',
    registers: [registry],
    collect() {
      setCounter(this, sources.counters.upgradesPaced);
    },
  });
  new Counter({
    name: 'seedwire_agent_welcomes_held_total',
    help: 'Agent welcomes held back (at most welcomeMaxWaitMs) to keep a herd within the admission rate',
    registers: [registry],
    collect() {
      setCounter(this, sources.counters.welcomesHeld);
    },
  });
  new Gauge({
    name: 'seedwire_agent_handshakes_pending',
    help: 'Agent upgrades being authenticated and sessions that have not finished their hello; at 256, new upgrades are answered 503 SEEDWIRE_TOO_MANY_CONNECTIONS',
    registers: [registry],
    collect() {
      this.set(sources.pendingHandshakes());
    },
  });
  const checkpointer = sources.checkpointer;
  if (checkpointer) {
    new Gauge({
      name: 'seedwire_sqlite_checkpoint_thread_up',
      help: "1 while the store's WAL checkpoints run on their own thread; 0 once it stopped (the main connection checkpoints, and a warning was logged)",
      registers: [registry],
      collect() {
        this.set(checkpointer.active ? 1 : 0);
      },
    });
    new Counter({
      name: 'seedwire_sqlite_checkpoints_total',
      help: "WAL checkpoints the store's checkpoint thread ran",
      registers: [registry],
      collect() {
        setCounter(this, checkpointer.runs);
      },
    });
    new Gauge({
      name: 'seedwire_sqlite_wal_frames',
      help: 'WAL frames at the latest checkpoint: in the log, and copied into the database (fewer copied than logged: readers held some back)',
      labelNames: ['stat'],
      registers: [registry],
      collect() {
        this.set({ stat: 'log' }, checkpointer.last?.log ?? 0);
        this.set({ stat: 'checkpointed' }, checkpointer.last?.checkpointed ?? 0);
      },
    });
  }
  new Gauge({
    name: 'seedwire_process_resident_memory_bytes',
    help: 'Resident set size of the controller process',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().rss);
    },
  });

  const firstEnd = rememberer(CONTROLLER_LIMITS.metricsEndedMemory);
  const unsubscribe = sources.bus.subscribe((event) => {
    if (event.type === 'operation') {
      const op = event.data as { id?: string; op?: string; state?: string };
      if (op.id && op.op && op.state && op.state !== 'running' && firstEnd(`op:${op.id}`)) operationsEnded.inc({ op: op.op, outcome: op.state });
      return;
    }
    if (event.type !== 'seed') return;
    const seed = event.data as { id?: string; state?: string; bytesDone?: number; bytesPerSec?: number | null };
    if (!seed.id) return;
    if (typeof seed.bytesDone === 'number') {
      const before = seedDone.get(seed.id) ?? 0;
      if (seed.bytesDone > before) seedBytes.inc(seed.bytesDone - before);
      seedDone.set(seed.id, Math.max(before, seed.bytesDone));
    }
    if (seed.state === 'running' && typeof seed.bytesPerSec === 'number') seedRates.set(seed.id, seed.bytesPerSec);
    else seedRates.delete(seed.id);
    if (seed.state === 'succeeded' || seed.state === 'failed' || seed.state === 'aborted') {
      seedDone.delete(seed.id);
      if (firstEnd(`seed:${seed.id}`)) seedsEnded.inc({ outcome: seed.state });
    }
  });

  return {
    registry,
    dispose() {
      unsubscribe();
      loopDelay.disable();
      counters.observeHeartbeatRtt = () => {};
    },
  };
}

export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}
