/** The `none` backend: no snapshots; every change is refused, saying which key to set. */
import { SeedwireError } from '../../shared/errors.js';
import type { SnapshotBackend } from './types.js';

function refuse(): never {
  throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'this agent has no snapshot backend; set snapshot.backend to lvm or btrfs (with snapshot.mountPoint and its section)');
}

export function createNoneBackend(): SnapshotBackend {
  return {
    kind: 'none',
    list: async () => [],
    create: async () => refuse(),
    mount: async () => refuse(),
    unmount: async () => refuse(),
    remove: async () => refuse(),
    mounted: async () => null,
    markBusy: () => refuse(),
    unmarkBusy: () => undefined,
    isBusy: () => false,
  };
}
