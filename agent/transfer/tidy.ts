/** What finalize removes from a received datadir before it may become a server's. */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { isExcludedName } from './record-rules.js';

/**
 * Files a prepared backup leaves that must not stay in a live datadir; xtrabackup_info and
 * xtrabackup_binlog_info stay (harmless, and they say where the copy came from).
 */
const BACKUP_ONLY_FILES = ['xtrabackup_logfile', 'xtrabackup_checkpoints', 'xtrabackup_binlog_pos_innodb'] as const;

/**
 * Removes the backup's own bookkeeping (after `--prepare`) and any identity, pid or socket file
 * at the top of the datadir: none travels with a seed, but one may be left from before. The
 * marker stays; finalize removes it last.
 */
export async function tidyReceivedDatadir(datadir: string, options: { preparedBackup: boolean }): Promise<void> {
  if (options.preparedBackup) {
    for (const name of BACKUP_ONLY_FILES) await rm(join(datadir, name), { force: true });
  }
  for (const name of await readdir(datadir)) {
    if (name !== INCOMPLETE_MARKER && isExcludedName(name)) await rm(join(datadir, name), { force: true });
  }
}
