/** Constant-time token comparison: both sides are hashed first so lengths always match. */
import { hash, timingSafeEqual } from 'node:crypto';

/** One-shot, without a Hash object per call (1.5 against 1.9 µs here). */
function digest(value: string): Buffer {
  return hash('sha256', value, 'buffer');
}

export function compareSecret(presented: string, expected: string): boolean {
  return secretMatcher(expected)(presented);
}

/**
 * compareSecret against one fixed secret, its digest computed once: the admin token is checked on
 * every API request.
 */
export function secretMatcher(expected: string): (presented: string) => boolean {
  const want = digest(expected);
  // Compare digests (equal length) and the lengths, so neither content nor length leaks timing.
  return (presented) => timingSafeEqual(digest(presented), want) && presented.length === expected.length;
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function readBearer(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  return match ? match[1]! : null;
}
