/**
 * The sender's memory of file hashes already computed for a seed, one JSON line per file. It
 * spares a resumed send from re-reading every file before the resume offset just to rebuild the
 * end digest. It is only a cache: an entry is used when path, size and mtime still match, and
 * a wrong entry can only make the receiver's digest check fail, never pass.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { ContentHashName } from './content-hash.js';

/**
 * Where a seed's hash cache lives in the agent's stateDir (seed ids are free text, so hashed); one
 * per lane, and one per content hash (an attempt with the other hash must not use its entries).
 */
export function hashCachePath(stateDir: string, seedId: string, lane?: number, contentHash: ContentHashName = 'sha256'): string {
  const name = `seed-send-${createHash('sha256').update(seedId).digest('hex').slice(0, 24)}${contentHash === 'sha256' ? '' : `-${contentHash}`}`;
  return join(stateDir, lane === undefined ? name : `${name}-lane${lane}`);
}

export interface HashCacheEntry {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

export async function loadHashCache(path: string): Promise<Map<string, HashCacheEntry>> {
  const map = new Map<string, HashCacheEntry>();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return map;
    throw error;
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      const entry = JSON.parse(line) as HashCacheEntry;
      if (typeof entry.path === 'string' && typeof entry.sha256 === 'string') map.set(entry.path, entry);
    } catch {
      // a torn last line after a crash: ignore it
    }
  }
  return map;
}

export interface HashCacheWriter {
  add(entry: HashCacheEntry): void;
  close(): Promise<void>;
}

const FLUSH_LINES = 256;

export async function openHashCacheWriter(path: string, truncate: boolean): Promise<HashCacheWriter> {
  const fh: FileHandle = await open(path, truncate ? 'w' : 'a', 0o600);
  let lines: string[] = [];
  let writing: Promise<unknown> = Promise.resolve();
  const flush = (): void => {
    if (lines.length === 0) return;
    const text = lines.join('');
    lines = [];
    writing = writing.then(() => fh.write(text)).catch(() => undefined);
  };
  return {
    add(entry) {
      lines.push(`${JSON.stringify(entry)}\n`);
      if (lines.length >= FLUSH_LINES) flush();
    },
    async close() {
      flush();
      await writing;
      await fh.close();
    },
  };
}
