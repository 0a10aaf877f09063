/**
 * Mounts the seed state machine on a controller: its routes, resume at start, stop on close. On a
 * PostgreSQL store (cluster mode) seeds are leased: each is driven by one controller at a time
 * (seed/lease.ts).
 */
import { CLUSTER_LIMITS } from '../cluster/limits.js';
import type { ControllerDeps, ControllerPlugin } from '../types.js';
import { ownerIdFor, type SeedOwnership } from './lease.js';
import { SeedMachine } from './machine.js';
import { registerSeedRoutes } from './routes.js';

export interface SeedPluginOptions {
  /** How long a seed waits for a disconnected agent before failing (default 10 min). */
  reconnectWaitMs?: number;
  /** Cluster mode's lease timings (defaults in CLUSTER_LIMITS). */
  lease?: Partial<Pick<SeedOwnership, 'leaseMs' | 'sweepMs' | 'summonEveryMs' | 'summonWaitMs'>>;
}

/** Leases when several controllers may share the store (PostgreSQL); a SQLite store has one controller. */
function ownershipOf(deps: ControllerDeps, options: SeedPluginOptions): SeedOwnership | null {
  if (deps.store.kind !== 'postgres') return null;
  return {
    owner: ownerIdFor(deps.config.dataDir),
    // The cluster exists once the controller listens, before seeds are resumed or created.
    ownerUrl: () => deps.cluster?.advertiseUrl ?? null,
    leaseMs: options.lease?.leaseMs ?? CLUSTER_LIMITS.seedLeaseMs,
    sweepMs: options.lease?.sweepMs ?? CLUSTER_LIMITS.seedSweepMs,
    summonEveryMs: options.lease?.summonEveryMs ?? CLUSTER_LIMITS.summonEveryMs,
    summonWaitMs: options.lease?.summonWaitMs ?? CLUSTER_LIMITS.summonWaitMs,
    summon: async (agentId) => {
      await deps.cluster?.summon(agentId); // never rejects
    },
  };
}

export function createSeedPlugin(options: SeedPluginOptions = {}): ControllerPlugin {
  return (app, deps) => {
    const machine = new SeedMachine({
      store: deps.store,
      hub: deps.hub,
      operations: deps.operations,
      bus: deps.bus,
      audit: async (record) => {
        await deps.audit.record({ ...record, params: record.params ?? null, message: record.message ?? null });
      },
      log: deps.log.child({ component: 'seed' }),
      ...(options.reconnectWaitMs === undefined ? {} : { reconnectWaitMs: options.reconnectWaitMs }),
      ownership: ownershipOf(deps, options),
    });
    registerSeedRoutes(app, machine);
    // After listening (and, in cluster mode, once the advertise URL is known).
    if (deps.onStarted) deps.onStarted(() => machine.resumeUnfinished());
    else app.addHook('onReady', async () => machine.resumeUnfinished());
    // Seeds stay `running` across a shutdown and are picked up again by the next start.
    return () => machine.close();
  };
}
