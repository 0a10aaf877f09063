/** `snapshot`: read the datadir inside an LVM or btrfs snapshot of the source; the source keeps running. */
import type { SeedMethod } from './types.js';

export const snapshotMethod: SeedMethod = {
  transfer: { source: 'snapshot', format: 'tree', resumable: true },

  async precheck({ source, sourceFacts, refuse }) {
    if (sourceFacts.snapshotBackend === 'none') refuse(`source ${source} has no snapshot backend (set snapshot.backend in its agent config); use method cold`);
    if (sourceFacts.mounted) refuse(`source ${source} has snapshot ${sourceFacts.mounted.name} mounted; unmount it first`);
  },

  async prepareSource({ seed, state, sourceFacts, onSource }) {
    let name = await state.snapshotName();
    if (!name) {
      name = `seed-${seed.id.slice(5, 13)}`;
      await state.setSnapshotName(name); // recorded first: a crash after the create still removes it
    }
    const snapshot = name;
    // After a restart the snapshot may exist already (the backend prefixes its names).
    if (!sourceFacts()?.snapshots.some((s) => s.name.endsWith(snapshot))) {
      await onSource('create-snapshot', { name: snapshot }, 'create');
    }
    const mount = await onSource('mount-snapshot', { name: snapshot }, 'mount');
    return `snapshot ${snapshot} created and mounted${mount.dataPath ? ` (${mount.dataPath})` : ''}`;
  },

  async cleanupSource({ state, sourceFacts, onSource }) {
    const name = await state.snapshotName();
    if (!name) return [];
    const facts = sourceFacts();
    if (!facts || facts.mounted) await onSource('unmount-snapshot', {}, 'unmount');
    await onSource('remove-snapshot', { name }, 'remove');
    await state.setSnapshotName(null);
    return [`snapshot ${name} unmounted and removed`];
  },
};
