/**
 * The cleanup after a failed or aborted seed: best effort, each side on its own, source first.
 * The source goes back to how it was (the method undoes its prepare-source). The target is
 * touched only if this seed may have changed it: a prepare-target that refused (MySQL in use, no
 * space) deleted nothing; otherwise the target agent itself removes the partial data, only if
 * this seed's marker is there and its datadir guard passes, and says why when it does not.
 */
import { toSeedwireError, type ErrorCode } from '../../shared/errors.js';
import { SEED_LIMITS } from './limits.js';
import { cleanupSource, type StageDeps } from './stages.js';
import type { SeedView } from './types.js';

/** How seed-prepare-target refuses before it deletes anything: nothing of the target to clean up. */
const REFUSALS_BEFORE_DELETE: ReadonlySet<ErrorCode> = new Set(['SEEDWIRE_OP_REFUSED', 'SEEDWIRE_NO_SPACE']);

/**
 * `prepareTargetError`: the code prepare-target failed with, when the seed failed in that stage.
 * Runs on its own signal: the seed's run signal is already aborted when this is needed.
 */
export async function cleanupAfterFailure(deps: StageDeps, seed: SeedView, prepareTargetError: ErrorCode | null): Promise<void> {
  const signal = new AbortController().signal;
  const id = seed.id;
  const cleanupTarget = async (): Promise<void> => {
    const prepared = seed.stages.find((s) => s.name === 'prepare-target')?.state;
    if (prepared === 'pending') return;
    if (prepareTargetError !== null && REFUSALS_BEFORE_DELETE.has(prepareTargetError)) {
      await deps.audit({ actor: `seed:${id}`, agentId: seed.target, action: 'seed.cleanup.target', outcome: 'ok', message: `target left as it is: prepare-target refused (${prepareTargetError}) before deleting anything` });
      return;
    }
    const out = await deps.steps.step(seed.target, 'seed-cleanup-target', { seedId: id }, { seedId: id, stage: 'cleanup', callId: `${id}.cleanup-target`, signal, waitMs: SEED_LIMITS.cleanupTargetWaitMs });
    await deps.audit({ actor: `seed:${id}`, agentId: seed.target, action: 'seed.cleanup.target', outcome: 'ok', message: out.reason ?? (out.cleaned ? 'partial data removed' : 'target left as it is') });
  };
  const steps: Array<['source' | 'target', () => Promise<unknown>]> = [
    ['source', () => cleanupSource(deps, seed, signal, 'cleanup')],
    ['target', cleanupTarget],
  ];
  for (const [side, step] of steps) {
    try {
      await step();
    } catch (error) {
      const err = toSeedwireError(error);
      deps.log.warn({ seedId: id, side, code: err.code, err: err.message }, 'cleanup step failed');
      await deps.audit({ actor: `seed:${id}`, agentId: side === 'source' ? seed.source : seed.target, action: `seed.cleanup.${side}`, outcome: 'failed', message: `${err.code}: ${err.message}` });
    }
  }
}
