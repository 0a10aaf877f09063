/**
 * What each stage does once the stage loop (machine.ts) has recorded its start. The method's
 * hooks (methods/) do what differs between cold, snapshot and backup; the rest is common.
 */
import { SeedwireError } from '../../shared/errors.js';
import { throwIfStopped } from './agent-steps.js';
import { formatBytes } from './format.js';
import { methodOf } from './methods/index.js';
import type { MethodSteps } from './methods/types.js';
import type { StoredTransfer } from './store.js';
import { runTransfer, type TransferDeps } from './transfer.js';
import type { SeedView, StageName } from './types.js';

export type StageDeps = TransferDeps;

/**
 * A method's handle on a running seed's source in `stage`; call ids `<seed>.<stage>.<name>`.
 * 'cleanup' (after a failure or abort) has ids of its own: a step of the failed stage that was
 * cancelled is in the agent's ledger as cancelled, and its id would only get that answer again.
 */
export function methodSteps(deps: StageDeps, seed: SeedView, stage: StageName | 'cleanup', signal: AbortSignal): MethodSteps {
  const { store } = deps;
  return {
    seed,
    state: {
      snapshotName: async () => (await store.internals(seed.id)).snapshotName,
      setSnapshotName: (name) => store.setSnapshotName(seed.id, name),
      sourceStopped: async () => (await store.internals(seed.id)).sourceStopped,
      setSourceStopped: (stopped) => store.setSourceStopped(seed.id, stopped),
    },
    sourceFacts: () => deps.hub.facts(seed.source),
    onSource: (op, params, name) => deps.steps.step(seed.source, op, params, { seedId: seed.id, stage, callId: `${seed.id}.${stage}.${name}`, signal }),
  };
}

/** Undoes what prepare-source did; the cleanup-source stage's message. */
export async function cleanupSource(deps: StageDeps, seed: SeedView, signal: AbortSignal, stage: 'cleanup-source' | 'cleanup' = 'cleanup-source'): Promise<string> {
  const done = await methodOf(seed.method).cleanupSource(methodSteps(deps, seed, stage, signal));
  return done.length > 0 ? done.join('; ') : 'nothing to clean up';
}

/** Runs one stage; returns its message. */
export async function runStage(deps: StageDeps, seed: SeedView, stage: StageName, signal: AbortSignal): Promise<string | null> {
  throwIfStopped(signal);
  const method = methodOf(seed.method);
  switch (stage) {
    case 'precheck':
      return null; // done in create(); a resumed seed has it recorded
    case 'prepare-source':
      return method.prepareSource(methodSteps(deps, seed, stage, signal));
    case 'prepare-target': {
      const out = await deps.steps.step(seed.target, 'seed-prepare-target', { seedId: seed.id, requiredBytes: seed.bytesTotal ?? 0 }, { seedId: seed.id, stage, callId: `${seed.id}.prepare-target`, signal });
      return `datadir emptied, marker written; ${formatBytes(out.freeBytes)} free`;
    }
    case 'transfer':
      return runTransfer(deps, seed, method, signal);
    case 'verify':
      return verify(deps, seed);
    case 'finalize-target': {
      const { sent } = await storedTransfer(deps, seed);
      const extra = method.finalizeParams?.(sent) ?? {};
      // Over several lanes, the target checks every lane and combines their digests.
      const params = { seedId: seed.id, digest: sent.digest, startMysql: seed.startTarget, ...extra, ...(seed.lanes > 1 ? { lanes: seed.lanes } : {}) };
      const out = await deps.steps.step(seed.target, 'seed-finalize-target', params, { seedId: seed.id, stage, callId: `${seed.id}.finalize-target`, signal });
      const prepared = extra.prepare ? `backup prepared (${extra.prepare} --prepare); ` : '';
      return seed.startTarget ? `${prepared}marker removed; MySQL ${out.running ? 'running' : 'not running'}` : `${prepared}marker removed; MySQL left stopped (startTarget false)`;
    }
    case 'cleanup-source':
      return cleanupSource(deps, seed, signal);
  }
}

async function storedTransfer(deps: StageDeps, seed: SeedView): Promise<StoredTransfer> {
  const transfer = (await deps.store.internals(seed.id)).transfer;
  if (!transfer) throw new SeedwireError('SEEDWIRE_INTERNAL', 'no transfer result recorded');
  return transfer;
}

/** Both sides must describe the same stream (each file's SHA-256 was checked as it arrived). */
async function verify(deps: StageDeps, seed: SeedView): Promise<string> {
  const { sent, received } = await storedTransfer(deps, seed);
  if (sent.digest !== received.digest || sent.files !== received.files || sent.bytes !== received.bytes) {
    throw new SeedwireError(
      'SEEDWIRE_VERIFY_FAILED',
      `source sent ${sent.files} files / ${sent.bytes} bytes / digest ${sent.digest.slice(0, 16)}…, target received ${received.files} files / ${received.bytes} bytes / digest ${received.digest.slice(0, 16)}…`,
    );
  }
  return `${received.files} files verified; digest ${received.digest.slice(0, 16)}…`;
}
