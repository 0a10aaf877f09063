/**
 * Emptying the datadir: the one way seedwire deletes a datadir's contents. Only the configured
 * datadir, never `/`, and only once the datadir guard (guard.ts) finds it unused.
 */
import { readdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import { assertDatadirUnused, type GuardDeps } from './guard.js';

/**
 * Refuses a delete target that is not exactly the configured datadir's real path, or that is
 * `/` or empty. Pure, so every refusal is unit tested.
 */
export function validateDeleteTarget(target: string, configuredRealpath: string): void {
  if (target.trim() === '' || configuredRealpath.trim() === '') {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'refusing to delete an empty path; set mysql.datadir');
  }
  if (target === '/' || configuredRealpath === '/') {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'refusing to delete the contents of /; mysql.datadir must be a dedicated directory');
  }
  if (target !== configuredRealpath) {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', `refusing to delete ${target}: only the configured mysql.datadir (${configuredRealpath}) may be emptied`);
  }
}

export interface DeleteDatadirOptions {
  /** Names directly under the datadir to keep (the seed code keeps its incomplete marker). */
  keep?: readonly string[];
  /** The directory the caller means to empty; refused unless it resolves to mysql.datadir. */
  path?: string;
  /** For the guard's refusal: what the caller is doing ("empty" by default). */
  action?: string;
  /** Passed to the guard: the agent's own children may have files open (a seed's extractor). */
  ignoreOwnChildren?: boolean;
  /**
   * Runs after the guard passed and before anything is deleted: a seed writes its marker here,
   * so the marker exists whenever something was deleted, and does not when the guard refused.
   */
  beforeDelete?: () => Promise<void>;
}

async function resolveDir(path: string, what: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', `${what} ${path} cannot be resolved (${code})`, { cause: error });
  }
}

/**
 * Deletes everything inside mysql.datadir and keeps the directory itself (its owner, mode and
 * mount stay). Symlinks are removed, never followed.
 */
export async function deleteDatadirContents(deps: GuardDeps, options: DeleteDatadirOptions = {}): Promise<void> {
  if (deps.mysql.datadir.trim() === '') validateDeleteTarget('', '');
  const real = await resolveDir(deps.mysql.datadir, 'mysql.datadir');
  const target = options.path === undefined ? real : options.path.trim() === '' ? '' : await resolveDir(options.path, 'delete target');
  validateDeleteTarget(target, real);
  await assertDatadirUnused(deps, { action: options.action ?? 'empty', ...(options.ignoreOwnChildren ? { ignoreOwnChildren: true } : {}) });
  await options.beforeDelete?.();
  const keep = new Set(options.keep ?? []);
  for (const name of await readdir(real)) {
    if (deps.signal?.aborted) throw new SeedwireError('SEEDWIRE_CANCELED', 'deleting the datadir was canceled');
    if (keep.has(name)) continue;
    await rm(join(real, name), { recursive: true, force: true });
  }
}
