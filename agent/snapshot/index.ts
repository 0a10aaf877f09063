/**
 * The snapshot backend factory. `snapshotBackendFor(config)` returns one backend per config
 * object, so the ops and the seed code share its busy pins; `createSnapshotBackend` makes a
 * fresh one (tests).
 */
import type { AgentConfig } from '../config/schema.js';
import { createBtrfsBackend } from './btrfs.js';
import { BusySnapshots } from './busy.js';
import { createLvmBackend } from './lvm.js';
import { createNoneBackend } from './none.js';
import type { SnapshotBackend } from './types.js';

export type { CallOptions, Mount, Snapshot, SnapshotBackend } from './types.js';

export function createSnapshotBackend(config: AgentConfig, busy = new BusySnapshots()): SnapshotBackend {
  switch (config.snapshot?.backend) {
    case 'btrfs':
      return createBtrfsBackend(config, busy);
    case 'lvm':
      return createLvmBackend(config, busy);
    default:
      return createNoneBackend();
  }
}

const backends = new WeakMap<AgentConfig, SnapshotBackend>();

export function snapshotBackendFor(config: AgentConfig): SnapshotBackend {
  let backend = backends.get(config);
  if (!backend) {
    backend = createSnapshotBackend(config);
    backends.set(config, backend);
  }
  return backend;
}
