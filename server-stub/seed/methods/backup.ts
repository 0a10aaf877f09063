/**
 * `backup`: a hot copy by mariabackup or xtrabackup streaming from the running source. The stream
 * is a pipe (never resumed: every attempt runs the backup again from 0) and the target applies it
 * with `--prepare` of the same tool before MySQL may start.
 */
import type { SeedMethod } from './types.js';

export const backupMethod: SeedMethod = {
  transfer: { source: 'backup', format: 'stream', resumable: false },

  async precheck({ source, sourceFacts, askSource, refuse }) {
    if (!sourceFacts.backupTool) refuse(`source ${source} has no backup section in its agent config (set backup.tool)`);
    // A hot backup copies a running server (that is its point); asked live, not from facts.
    const status = await askSource('mysql-status', {});
    if (!status.running) refuse(`MySQL is not running on the source ${source}; a hot backup needs it running (use method cold for a stopped server)`);
  },

  async prepareSource() {
    return 'hot backup: source keeps running';
  },

  receiveParams(sourceFacts) {
    return { backupTool: sourceFacts?.backupTool ?? 'mariabackup' };
  },

  finalizeParams(sent) {
    return { prepare: sent.tool ?? 'mariabackup' };
  },

  resultExtras(sent) {
    return sent.tool ? { backupTool: sent.tool } : {};
  },

  async cleanupSource() {
    return [];
  },
};
