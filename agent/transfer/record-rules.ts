/**
 * What a receiver accepts from a seed, whatever the stream's format (the seed stream of
 * format.ts or a backup tool's xbstream). Pure functions: the decoders call them before they
 * hand a record on, and the tree writer (safe-tree.ts) calls them again at the file system's
 * edge, so no write depends on a decoder having been used. The rules are listed in
 * docs/seed-stream.md ("What the receiver refuses").
 *
 * Every refusal is SEEDWIRE_PATH_ESCAPE naming the record by its path, shown with control
 * characters escaped and its length capped; nothing else of the record is echoed.
 */
import { SeedwireError } from '../../shared/errors.js';
import { INCOMPLETE_MARKER, SEED_EXCLUDED_NAMES, SEED_EXCLUDED_SUFFIXES } from '../../shared/ops.js';

/** NAME_MAX and PATH_MAX - 1 of Linux, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4095;
/** How much of a refused path an error message shows. */
const SHOWN_PATH_CHARS = 160;

/**
 * Control characters (C0, DEL, C1), line and paragraph separators and bidirectional overrides:
 * none has a place in a datadir's names, and each can forge lines or hide text in logs.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Server identity, pid and socket files and the seed's own marker: never sent, never accepted. */
export function isExcludedName(name: string): boolean {
  if (name === INCOMPLETE_MARKER) return true;
  if ((SEED_EXCLUDED_NAMES as readonly string[]).includes(name)) return true;
  return SEED_EXCLUDED_SUFFIXES.some((suffix) => name.endsWith(suffix));
}

/** A path as an error message may show it: JSON-quoted, unsafe characters escaped, length capped. */
export function showPath(path: string): string {
  const capped = path.length > SHOWN_PATH_CHARS ? `${path.slice(0, SHOWN_PATH_CHARS)}…` : path;
  const quoted = JSON.stringify(capped).replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udfff]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return path.length > SHOWN_PATH_CHARS ? `${quoted} (${path.length} characters)` : quoted;
}

export function refuseRecord(path: string, why: string): SeedwireError {
  return new SeedwireError('SEEDWIRE_PATH_ESCAPE', `refusing record ${showPath(path)}: ${why}`);
}

/**
 * Refuses a record path that is not a plain relative path of safe names inside the datadir:
 * empty, absolute, with empty, `.` or `..` components, unsafe characters, not well-formed
 * Unicode, too long, or that is or lies under an excluded name.
 */
export function checkRecordPath(path: string): void {
  if (path.length === 0) throw refuseRecord(path, 'it is empty');
  if (UNSAFE_CHARS.test(path)) throw refuseRecord(path, 'it contains a control character');
  if (LONE_SURROGATE.test(path)) throw refuseRecord(path, 'it is not well-formed Unicode');
  if (path.startsWith('/')) throw refuseRecord(path, 'it is absolute');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw refuseRecord(path, `it is longer than ${MAX_PATH_BYTES} bytes`);
  for (const part of path.split('/')) {
    if (part === '') throw refuseRecord(path, 'it has an empty component');
    if (part === '.' || part === '..') throw refuseRecord(path, `it has a '${part}' component`);
    if (Buffer.byteLength(part, 'utf8') > MAX_NAME_BYTES) throw refuseRecord(path, `a component is longer than ${MAX_NAME_BYTES} bytes`);
    if (isExcludedName(part)) throw refuseRecord(path, `${JSON.stringify(part)} is a name a seed never carries`);
  }
}

/** Permission bits only: setuid, setgid and sticky never come from a peer. */
export function permissionBits(mode: number): number {
  return mode & 0o777;
}

/**
 * Whether a symlink at `path` (relative to the datadir) with `target` stays inside the datadir
 * `root`, judged without touching the file system so it cannot be raced:
 * - a relative target may climb with leading `..` components no higher than the datadir, then
 *   only descend (a `..` after a name could climb out of a symlinked directory);
 * - an absolute target must be the datadir or under it, with no `.` or `..` components.
 * Every symlink received is judged so, and none is ever written through, so a chain of them
 * resolves inside the datadir too.
 */
export function symlinkStaysInside(root: string, path: string, target: string): boolean {
  if (target.startsWith('/')) {
    const rootParts = root.split('/').filter((p) => p !== '');
    const parts = target.split('/').filter((p) => p !== '');
    if (parts.some((p) => p === '.' || p === '..')) return false;
    return rootParts.every((p, i) => parts[i] === p);
  }
  const depth = path.split('/').length - 1; // directories between the datadir and the link
  const parts = target.split('/').filter((p) => p !== '' && p !== '.');
  let climbs = 0;
  while (parts[climbs] === '..') climbs += 1;
  if (climbs > depth) return false;
  return !parts.slice(climbs).includes('..');
}

/** Refuses a symlink target with unsafe characters, and one leading outside unless allowed. */
export function checkSymlinkTarget(root: string, path: string, target: string, allowExternal: boolean): void {
  if (UNSAFE_CHARS.test(target) || LONE_SURROGATE.test(target)) throw refuseRecord(path, 'its symlink target contains a control character');
  if (!allowExternal && !symlinkStaysInside(root, path, target)) {
    throw refuseRecord(path, 'it is a symlink whose target resolves outside the datadir (set receive.allowExternalSymlinks: true in the agent config for tablespaces kept elsewhere)');
  }
}

/** Counts the bytes a stream declares and refuses it once they pass what the precheck promised. */
export class DeclaredBytesBudget {
  private declared = 0;

  constructor(
    private readonly maxBytes: number | null,
    already = 0,
  ) {
    this.declared = already;
  }

  get total(): number {
    return this.declared;
  }

  add(path: string, bytes: number): void {
    this.declared += bytes;
    if (this.maxBytes !== null && this.declared > this.maxBytes) {
      throw refuseRecord(path, `the stream declares ${this.declared} bytes by this record, more than the ${this.maxBytes} the seed's precheck allowed`);
    }
  }
}
