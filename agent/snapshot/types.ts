/**
 * One interface over the snapshot backends (btrfs, LVM, none). A snapshot is only ever mounted
 * read-only at `snapshot.mountPoint`, one at a time; mount state comes from /proc/self/mounts.
 */
import type { Mount, Snapshot } from '../../shared/frames.js';
import type { Runner } from '../mysql/runner.js';

export type { Mount, Snapshot };

export interface CallOptions {
  signal?: AbortSignal;
  /** How to run host commands; an op passes ctx.run so the caller sees them. Default: runCommand. */
  run?: Runner;
}

export interface SnapshotBackend {
  readonly kind: 'btrfs' | 'lvm' | 'none';
  /** Snapshots with the configured name prefix, oldest first; names are given without the prefix. */
  list(options?: CallOptions): Promise<Snapshot[]>;
  /** Takes a snapshot; `name` defaults to a UTC timestamp such as 20261125-063000. */
  create(name?: string, options?: CallOptions): Promise<Snapshot>;
  /** Mounts a snapshot read-only at mountPoint; mounting the one already mounted is a no-op. */
  mount(name: string, options?: CallOptions): Promise<Mount>;
  /** Unmounts whatever snapshot is mounted at mountPoint (no-op when none). */
  unmount(options?: CallOptions): Promise<void>;
  /** Removes a snapshot; refused while it is mounted or busy. */
  remove(name: string, options?: CallOptions): Promise<void>;
  /** The snapshot mounted at mountPoint now, per /proc/self/mounts. */
  mounted(options?: CallOptions): Promise<Mount | null>;
  /** Pins a snapshot while a seed reads it: remove and unmount refuse it until unmarkBusy. */
  markBusy(name: string): void;
  unmarkBusy(name: string): void;
  isBusy(name: string): boolean;
}
