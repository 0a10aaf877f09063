/**
 * The hash of each file's content in a tree seed: a record's 32-byte trailer, the receiver's
 * check of it, and the hex in the end digest's lines. SHA-256 by default; BLAKE3 when the
 * controller asks for it (`contentHash: 'blake3'` on seed-send and seed-receive), which it does
 * only when both agents say in their hello that they have it (CONTENT_HASH_BLAKE3_CAPABILITY).
 *
 * Why two: SHA-256 is Node's own (OpenSSL, with the CPU's SHA extensions about 1.7 GB/s per core
 * on this project's bench machine) and was 8–17% of each agent's CPU in a seed; BLAKE3 is as
 * collision-resistant (256-bit output, 128-bit collision security) and ran at 8.4 GB/s per core
 * there (docs/performance.md, "Content hash"). It comes from a native addon (@napi-rs/blake-hash's
 * prebuilt linux-x64 build, an optional dependency);
 * an agent where it does not load (the one-file bundle without seedwire-blake3.node beside it,
 * another platform) just does not offer it, and its seeds use SHA-256.
 *
 * The end digest over the lines stays SHA-256 either way: it hashes a few bytes per file.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SeedwireError } from '../../shared/errors.js';
import type { ContentHashName } from '../../shared/ops.js';

export type { ContentHashName };

/** What the transfer code needs of a hash: feed bytes, take the 32-byte digest once. */
export interface ContentHash {
  update(data: Buffer): void;
  digest(): Buffer;
}

interface Blake3Hasher {
  update(input: Uint8Array): unknown;
  digestBuffer(): Buffer;
}
interface Blake3Module {
  Blake3Hasher: new () => Blake3Hasher;
}

/** Beside the one-file bundle (scripts/build-dist.mjs copies it there). */
export const BLAKE3_ADDON = 'seedwire-blake3.node';

let loaded: Blake3Module | null | undefined;

function loadBlake3(): Blake3Module | null {
  if (loaded !== undefined) return loaded;
  const here = fileURLToPath(import.meta.url);
  const load = createRequire(here);
  // The prebuilt addon of @napi-rs/blake-hash for this platform (an optional dependency: npm
  // installs it only where it runs), else the copy beside the one-file bundle.
  for (const id of [`@napi-rs/blake-hash-${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}`, join(dirname(here), BLAKE3_ADDON)]) {
    try {
      const mod = load(id) as Partial<Blake3Module>;
      if (typeof mod.Blake3Hasher === 'function') return (loaded = mod as Blake3Module);
    } catch {
      // not installed here, or another platform's addon: try the next, else SHA-256 only
    }
  }
  return (loaded = null);
}

/** Whether this agent can hash with BLAKE3 (its hello offers it). */
export function blake3Available(): boolean {
  return loadBlake3() !== null;
}

export function createContentHash(name: ContentHashName): ContentHash {
  if (name === 'sha256') {
    const hash = createHash('sha256');
    return {
      update: (data) => void hash.update(data),
      digest: () => hash.digest(),
    };
  }
  const blake3 = loadBlake3();
  if (!blake3) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `BLAKE3 is not available on this agent: put ${BLAKE3_ADDON} beside seedwire-agent.mjs, or let the controller choose SHA-256`);
  const hasher = new blake3.Blake3Hasher();
  return {
    update: (data) => void hasher.update(data),
    digest: () => hasher.digestBuffer(),
  };
}
