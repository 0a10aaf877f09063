/** GET /metrics: Prometheus text from a registry owned by this controller (never the global one). */
import type Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';
import type { HubCounters } from '../hub/counters.js';

export interface MetricsSources {
  db: Database.Database;
  counters: HubCounters;
  connectedAgents(): number;
}

function setCounter(counter: Counter<string>, value: number, labels?: Record<string, string>): void {
  if (labels) {
    counter.remove(labels);
    counter.inc(labels, value);
  } else {
    counter.reset();
    counter.inc(value);
  }
}

export function createMetricsRegistry(sources: MetricsSources): Registry {
  const registry = new Registry();
  const countByState = sources.db.prepare('SELECT state, COUNT(*) AS n FROM operations GROUP BY state');
  new Gauge({
    name: 'seedwire_agents_connected',
    help: 'Agents with an open session',
    registers: [registry],
    collect() {
      this.set(sources.connectedAgents());
    },
  });
  new Gauge({
    name: 'seedwire_operations',
    help: 'Operations in the store by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const state of ['running', 'succeeded', 'failed', 'canceled']) this.set({ state }, 0);
      for (const row of countByState.all() as Array<{ state: string; n: number }>) this.set({ state: row.state }, row.n);
    },
  });
  new Counter({
    name: 'seedwire_relay_bytes_total',
    help: 'Bytes of stream data relayed between agents',
    registers: [registry],
    collect() {
      setCounter(this, sources.counters.bytesRelayed);
    },
  });
  new Counter({
    name: 'seedwire_relay_dropped_frames_total',
    help: 'Data frames dropped by the relay (no route, target offline, window exceeded)',
    registers: [registry],
    collect() {
      setCounter(this, sources.counters.relayDropped);
    },
  });
  new Counter({
    name: 'seedwire_ws_frames_total',
    help: 'WebSocket frames exchanged with agents',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      setCounter(this, sources.counters.framesIn, { direction: 'in' });
      setCounter(this, sources.counters.framesOut, { direction: 'out' });
    },
  });
  new Counter({
    name: 'seedwire_bad_frames_total',
    help: 'Frames from agents that failed to parse or validate',
    registers: [registry],
    collect() {
      setCounter(this, sources.counters.badFrames);
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
  new Gauge({
    name: 'seedwire_process_resident_memory_bytes',
    help: 'Resident set size of the controller process',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().rss);
    },
  });
  return registry;
}

export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}
