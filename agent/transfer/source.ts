/**
 * Where a seed's source bytes are on this host. For a snapshot seed the snapshot backend says
 * which snapshot is mounted and where the datadir lies inside it; that snapshot is pinned while
 * it is read, so it cannot be unmounted or removed under a running seed.
 */
import { SeedwireError } from '../../shared/errors.js';
import type { AgentConfig } from '../config/schema.js';
import { snapshotBackendFor } from '../snapshot/index.js';

export interface SeedSource {
  root: string;
  /** Unpins what acquireSource pinned; idempotent. */
  release(): void;
}

export async function acquireSource(config: AgentConfig, kind: 'datadir' | 'snapshot' | 'backup', signal?: AbortSignal): Promise<SeedSource> {
  switch (kind) {
    case 'datadir':
      if (!config.mysql) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'set mysql.datadir to seed from the datadir');
      return { root: config.mysql.datadir, release: () => undefined };
    case 'snapshot': {
      if (!config.snapshot || config.snapshot.backend === 'none') {
        throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'set snapshot.backend and snapshot.mountPoint to seed from a snapshot');
      }
      const backend = snapshotBackendFor(config);
      const mount = await backend.mounted(signal ? { signal } : {});
      if (!mount) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `no snapshot is mounted at ${config.snapshot.mountPoint}; mount one first`);
      backend.markBusy(mount.name);
      let released = false;
      return {
        root: mount.dataPath,
        release: () => {
          if (released) return;
          released = true;
          backend.unmarkBusy(mount.name);
        },
      };
    }
    case 'backup':
      // The backup tool reads the running server's datadir itself (agent/transfer/backup.ts);
      // this root only serves to measure it (seed-source-size).
      if (!config.backup) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'set backup.tool (mariabackup or xtrabackup) to seed with a hot backup');
      if (!config.mysql) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'set mysql.datadir to seed with a hot backup');
      return { root: config.mysql.datadir, release: () => undefined };
  }
}
