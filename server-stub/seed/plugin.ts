/** Mounts the seed state machine on a controller: its routes, resume at start, stop on close. */
import type { ControllerPlugin } from '../types.js';
import { SeedMachine } from './machine.js';
import { registerSeedRoutes } from './routes.js';

export interface SeedPluginOptions {
  /** How long a seed waits for a disconnected agent before failing (default 10 min). */
  reconnectWaitMs?: number;
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
    });
    registerSeedRoutes(app, machine);
    app.addHook('onReady', async () => machine.resumeUnfinished());
    // Seeds stay `running` across a shutdown and are picked up again by the next start.
    return () => machine.close();
  };
}
