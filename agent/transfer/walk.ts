/**
 * Walks a tree in seed-stream order (format.ts): depth-first pre-order, siblings sorted bytewise,
 * excluded names skipped at every depth. Memory is bounded by the depth times the widest
 * directory, not by the tree. Sockets, FIFOs and devices are not part of a datadir and are skipped.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { compareNames, isExcludedName, normaliseMode, normaliseMtime, type EntryHeader } from './format.js';

export interface WalkEntry {
  header: EntryHeader;
  /** Absolute path on this host. */
  abs: string;
}

export async function* walkTree(root: string, signal?: AbortSignal): AsyncGenerator<WalkEntry> {
  yield* walkDir(root, '', signal);
}

async function* walkDir(abs: string, rel: string, signal: AbortSignal | undefined): AsyncGenerator<WalkEntry> {
  signal?.throwIfAborted();
  const names = (await readdir(abs)).filter((name) => !isExcludedName(name)).sort(compareNames);
  // The entries' lstat in batches (thread-pool round trips together, not one after another per
  // file: a datadir has thousands of small tables); yielded in order all the same.
  for (let from = 0; from < names.length; from += LSTAT_BATCH) {
    const batch = names.slice(from, from + LSTAT_BATCH);
    const stats = await Promise.all(batch.map((name) => lstat(join(abs, name))));
    for (const [i, name] of batch.entries()) yield* entryOf(abs, rel, name, stats[i]!, signal);
  }
}

/** Entries stat'ed together when a directory is walked. */
const LSTAT_BATCH = 64;

async function* entryOf(abs: string, rel: string, name: string, st: Stats, signal: AbortSignal | undefined): AsyncGenerator<WalkEntry> {
  const childAbs = join(abs, name);
  const childRel = rel === '' ? name : `${rel}/${name}`;
  const common = { path: childRel, mode: normaliseMode(st.mode), mtimeMs: normaliseMtime(st.mtimeMs) };
  if (st.isDirectory()) {
    yield { header: { type: 'dir', ...common }, abs: childAbs };
    yield* walkDir(childAbs, childRel, signal);
  } else if (st.isFile()) {
    yield { header: { type: 'file', ...common, size: st.size }, abs: childAbs };
  } else if (st.isSymbolicLink()) {
    yield { header: { type: 'symlink', ...common, target: await readlink(childAbs) }, abs: childAbs };
  }
}

/** Apparent size and count of the files a seed of `root` would carry. */
export async function measureTree(root: string, signal?: AbortSignal): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for await (const entry of walkTree(root, signal)) {
    if (entry.header.type === 'file') {
      bytes += entry.header.size;
      files += 1;
    }
  }
  return { bytes, files };
}
