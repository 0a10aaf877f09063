/** The `.seedwire-incomplete` marker a seed leaves in a datadir until it completes (CONTRACT section 5). */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';

const MARKER_READ_BYTES = 256;

/**
 * The marker's content (the seed id) when the datadir holds one, `'unknown seed'` for an empty
 * marker, null when there is none.
 */
export async function readIncompleteMarker(datadir: string): Promise<string | null> {
  let handle;
  try {
    handle = await open(join(datadir, INCOMPLETE_MARKER), 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(MARKER_READ_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, MARKER_READ_BYTES, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8').split('\n')[0]?.trim() ?? '';
    return text || 'unknown seed';
  } finally {
    await handle.close();
  }
}
