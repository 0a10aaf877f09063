/**
 * Where a seed's source bytes are on this host. The snapshot backend (agent/snapshot/) will own
 * "which snapshot is mounted"; until it is wired in, the snapshot datadir is derived from the
 * config alone (CONTRACT section 1: mysql.datadir relative to the snapshotted volume).
 */
import { join, relative } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import type { AgentConfig } from '../config/schema.js';

/** The datadir inside the mounted snapshot. */
export function resolveSnapshotDataPath(config: AgentConfig): string {
  const datadir = config.mysql?.datadir;
  const snapshot = config.snapshot;
  if (!datadir) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'set mysql.datadir to seed from a snapshot');
  if (!snapshot || snapshot.backend === 'none' || !snapshot.mountPoint) {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'set snapshot.backend and snapshot.mountPoint to seed from a snapshot');
  }
  // btrfs: the snapshot is of `btrfs.subvolume`; LVM: the datadir is assumed at the volume's root.
  const volumeRoot = snapshot.backend === 'btrfs' && snapshot.btrfs ? snapshot.btrfs.subvolume : datadir;
  const inside = relative(volumeRoot, datadir);
  if (inside.startsWith('..')) throw new SeedwireError('SEEDWIRE_CONFIG', `mysql.datadir ${datadir} is not inside snapshot.btrfs.subvolume ${volumeRoot}`);
  return join(snapshot.mountPoint, inside);
}
