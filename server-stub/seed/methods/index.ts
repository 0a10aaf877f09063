/**
 * The registry of seed methods. A new method is one file beside these (implementing SeedMethod)
 * and one line here; the API, the store and the stage loop take their names from this object.
 */
import { SeedwireError } from '../../../shared/errors.js';
import { backupMethod } from './backup.js';
import { coldMethod } from './cold.js';
import { snapshotMethod } from './snapshot.js';
import type { SeedMethod } from './types.js';

export const SEED_METHODS = {
  snapshot: snapshotMethod,
  cold: coldMethod,
  backup: backupMethod,
} as const satisfies Record<string, SeedMethod>;

export type SeedMethodName = keyof typeof SEED_METHODS;

export const SEED_METHOD_NAMES = Object.keys(SEED_METHODS) as [SeedMethodName, ...SeedMethodName[]];

export function isSeedMethodName(name: string): name is SeedMethodName {
  return Object.hasOwn(SEED_METHODS, name);
}

/** The method of a stored seed; a name this controller does not know (a newer one wrote it) is refused. */
export function methodOf(name: string): SeedMethod {
  if (!isSeedMethodName(name)) throw new SeedwireError('SEEDWIRE_OP_REFUSED', `method ${name} is not supported`);
  return SEED_METHODS[name];
}

export type { SeedMethod } from './types.js';
