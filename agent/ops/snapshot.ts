/** The snapshot operations (README, "Operations"), over the configured backend. */
import { PUBLIC_OP_PARAMS } from '../../shared/ops.js';
import { snapshotBackendFor, type CallOptions } from '../snapshot/index.js';
import { defineOp, type OpContext, type OpDefinition } from './types.js';

export { createSnapshotBackend, snapshotBackendFor, type SnapshotBackend } from '../snapshot/index.js';

function callOptions(ctx: OpContext): CallOptions {
  return { signal: ctx.signal, run: ctx.run };
}

export const snapshotOps: OpDefinition[] = [
  defineOp({
    name: 'snapshots',
    params: PUBLIC_OP_PARAMS.snapshots,
    requires: ['snapshot'],
    run: async (ctx) => ({ result: await snapshotBackendFor(ctx.config).list(callOptions(ctx)) }),
  }),
  defineOp({
    name: 'create-snapshot',
    params: PUBLIC_OP_PARAMS['create-snapshot'],
    requires: ['snapshot'],
    mutates: true,
    run: async (ctx, params) => ({ result: await snapshotBackendFor(ctx.config).create(params.name, callOptions(ctx)) }),
  }),
  defineOp({
    name: 'mount-snapshot',
    params: PUBLIC_OP_PARAMS['mount-snapshot'],
    // the datadir's place inside the snapshot comes from mysql.datadir
    requires: ['snapshot', 'mysql'],
    mutates: true,
    run: async (ctx, params) => {
      const { mountPoint, dataPath } = await snapshotBackendFor(ctx.config).mount(params.name, callOptions(ctx));
      return { result: { mountPoint, dataPath } };
    },
  }),
  defineOp({
    name: 'unmount-snapshot',
    params: PUBLIC_OP_PARAMS['unmount-snapshot'],
    requires: ['snapshot'],
    mutates: true,
    run: async (ctx) => {
      await snapshotBackendFor(ctx.config).unmount(callOptions(ctx));
      return { result: { mounted: false } };
    },
  }),
  defineOp({
    name: 'remove-snapshot',
    params: PUBLIC_OP_PARAMS['remove-snapshot'],
    requires: ['snapshot'],
    mutates: true,
    run: async (ctx, params) => {
      await snapshotBackendFor(ctx.config).remove(params.name, callOptions(ctx));
      return { result: { removed: true } };
    },
  }),
];
