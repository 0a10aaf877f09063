/**
 * The `.seedwire-incomplete` marker a seed leaves in a datadir until it completes (see
 * docs/seed-flow.md): written and fsynced before a seed empties anything, so it is also the
 * record that this seed touched the target.
 *
 * The datadir is filled by a peer, so the marker is never followed: it is opened with O_NOFOLLOW
 * (and O_NONBLOCK, so a FIFO cannot hang the agent), and anything but a regular file with one
 * link is refused without reading it. Its content is repeated in messages only when it looks
 * like a seed id.
 */
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { AGENT_LIMITS } from '../limits.js';

/** What a seed id looks like (the controller makes `seed-<uuid>`); anything else is not echoed. */
const SEED_ID_SHAPE = /^[A-Za-z0-9._:@-]{1,128}$/;

export interface MarkerContent {
  /** The seed id it names; null when it is empty or does not look like a seed id. */
  seedId: string | null;
}

function markerPath(datadir: string): string {
  return join(datadir, INCOMPLETE_MARKER);
}

function refuseMarker(datadir: string, what: string, cause?: unknown): SeedwireError {
  return new SeedwireError(
    'SEEDWIRE_OP_REFUSED',
    `${markerPath(datadir)} is ${what}, not a regular file: seedwire neither reads nor writes it; check it and remove it by hand`,
    cause === undefined ? {} : { cause },
  );
}

/** Opens the marker without following it, or throws the refusal naming what is there instead. */
async function openMarker(datadir: string, flags: number): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(markerPath(datadir), flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw refuseMarker(datadir, 'a symbolic link', error);
    if (code === 'EISDIR') throw refuseMarker(datadir, 'a directory', error);
    if (code === 'ENXIO') throw refuseMarker(datadir, 'a FIFO or socket', error);
    throw error;
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw refuseMarker(datadir, stat.isFIFO() ? 'a FIFO' : stat.isDirectory() ? 'a directory' : 'a special file');
    // A hard link to a file elsewhere would be read or truncated in place.
    if (stat.nlink > 1) throw refuseMarker(datadir, `a hard link (${stat.nlink} links)`);
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** The marker's content, or null when the datadir has none. */
export async function inspectMarker(datadir: string): Promise<MarkerContent | null> {
  let handle: FileHandle;
  try {
    handle = await openMarker(datadir, constants.O_RDONLY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(AGENT_LIMITS.markerReadBytes);
    const { bytesRead } = await handle.read(buffer, 0, AGENT_LIMITS.markerReadBytes, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8').split('\n')[0]?.trim() ?? '';
    return { seedId: SEED_ID_SHAPE.test(text) ? text : null };
  } finally {
    await handle.close();
  }
}

/**
 * Refuses (SEEDWIRE_OP_REFUSED) unless the datadir carries the marker of `seedId`: the seed's
 * later steps only touch a datadir its own prepare emptied.
 */
export async function requireSeedMarker(datadir: string, seedId: string): Promise<void> {
  const marker = await inspectMarker(datadir);
  if (marker?.seedId === seedId) return;
  throw new SeedwireError(
    'SEEDWIRE_OP_REFUSED',
    marker === null ? `${datadir} has no ${INCOMPLETE_MARKER}: run seed-prepare-target first` : `${datadir} is being seeded by ${marker.seedId ?? 'an unknown seed'}, not ${seedId}`,
  );
}

/**
 * The seed id the marker names, `'unknown seed'` for a marker without one, null when there is
 * none. A marker that is not a regular file is refused (SEEDWIRE_OP_REFUSED).
 */
export async function readIncompleteMarker(datadir: string): Promise<string | null> {
  const marker = await inspectMarker(datadir);
  return marker === null ? null : (marker.seedId ?? 'unknown seed');
}

/**
 * Writes `seedId` into the marker and fsyncs it and the datadir. A marker this call created is
 * removed again if writing it fails (a full disk): a half-written marker of a seed that then
 * deleted nothing would only block the server from starting.
 */
export async function writeIncompleteMarker(datadir: string, seedId: string): Promise<void> {
  let created = true;
  let handle: FileHandle;
  try {
    handle = await openMarker(datadir, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    created = false;
    handle = await openMarker(datadir, constants.O_WRONLY);
  }
  try {
    await handle.truncate(0);
    await handle.write(seedId, 0, 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close();
    if (created) await unlink(markerPath(datadir)).catch(() => undefined);
    throw error;
  }
  await handle.close();
  await syncDirectory(datadir);
}

/** Removes the marker (unlink never follows a link) and fsyncs the datadir. */
export async function removeIncompleteMarker(datadir: string): Promise<void> {
  try {
    await unlink(markerPath(datadir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await syncDirectory(datadir);
}

/** fsync of a directory: makes created and removed names durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
