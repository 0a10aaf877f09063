/** `cold`: stop the source's MySQL, copy its datadir, start it again (only if the seed stopped it). */
import type { SeedMethod } from './types.js';

export const coldMethod: SeedMethod = {
  transfer: { source: 'datadir', format: 'tree', resumable: true },

  async prepareSource({ state, onSource }) {
    // Only a server the seed stopped is started again afterwards; one already down stays down.
    if (!(await state.sourceStopped())) {
      const status = await onSource('mysql-status', {}, 'status');
      if (!status.running) return 'MySQL was already stopped on the source; it stays stopped after the seed';
      await state.setSourceStopped(true); // recorded first: a crash after the stop still restarts it
    }
    await onSource('mysql-stop', {}, 'stop');
    return 'MySQL stopped on the source';
  },

  async cleanupSource({ state, onSource }) {
    if (!(await state.sourceStopped())) return [];
    await onSource('mysql-start', {}, 'start');
    await state.setSourceStopped(false);
    return ['MySQL started again on the source'];
  },
};
