/**
 * Walks a tree in seed-stream order (format.ts): depth-first pre-order, siblings sorted bytewise,
 * excluded names skipped at every depth. Memory is bounded by the depth times the widest
 * directory, not by the tree. Sockets, FIFOs and devices are not part of a datadir and are skipped.
 */
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
  for (const name of names) {
    const childAbs = join(abs, name);
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const st = await lstat(childAbs);
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
