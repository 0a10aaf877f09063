/**
 * Every agent call a seed makes once it runs (the prechecks' read-only questions aside) goes
 * through `step()`, typed by the operation contract (shared/ops.ts). Each step runs as an
 * operation linked to its seed (the operation runner: stored with its output, exit code and audit
 * rows, listed by `GET /api/operations?seed=ID`), under the step's own deterministic call id, so a
 * re-sent step re-attaches to its operation instead of starting another.
 */
import { SeedwireError, toSeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { OpName, OpParamsInput, OpProgressOf, OpResultOf } from '../../shared/ops.js';
import type { AgentHub } from '../hub/types.js';
import type { OperationRunner } from '../ops/types.js';
import type { StageName } from './types.js';

/** Errors that say the link failed, not the step: a step that waits re-sends the same call id. */
export const LINK_ERRORS: ReadonlySet<ErrorCode> = new Set(['SEEDWIRE_DISCONNECTED', 'SEEDWIRE_AGENT_OFFLINE', 'SEEDWIRE_LOST']);

export interface StepOptions<N extends OpName> {
  seedId: string;
  /** The stage the step belongs to; 'cleanup': the target's cleanup after a failure or abort. */
  stage: StageName | 'cleanup';
  /** Deterministic (`<seed>.<stage>...`): after a reconnect or a controller restart the agent's ledger answers a repeated id without running it twice. */
  callId: string;
  signal: AbortSignal;
  /**
   * 'wait' (default): survive link drops by waiting for the agent and re-sending the same call id.
   * 'fail': one try; a drop rejects at once (the transfer's bulk calls, whose caller starts a new attempt).
   */
  onDisconnect?: 'wait' | 'fail';
  onProgress?: (data: OpProgressOf<N>) => void;
  /** How long to wait for a disconnected agent (default: the seed's reconnect wait). */
  waitMs?: number;
}

export interface AgentSteps {
  step<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: StepOptions<N>): Promise<OpResultOf<N>>;
  /** Resolves once the agent is connected; SEEDWIRE_AGENT_OFFLINE after `waitMs`. */
  waitForAgent(agentId: string, signal: AbortSignal, waitMs?: number): Promise<void>;
}

/**
 * Why a seed's run stops early: its own abort, the controller shutting down (it resumes on the
 * next start), or 'fenced': this controller no longer holds the seed's lease (cluster mode), so
 * another controller drives it and this one must not touch its agents.
 */
export type StopReason = 'abort' | 'shutdown' | 'fenced';

/** Stops that leave the seed to be resumed (here or elsewhere) rather than failed. */
export function isDetachedStop(signal: AbortSignal): boolean {
  return signal.aborted && (signal.reason === ('shutdown' satisfies StopReason) || signal.reason === ('fenced' satisfies StopReason));
}

/** Cluster mode's hooks into every step (seed/lease.ts); absent for a single controller. */
export interface StepHooks {
  /** Throws (and stops the seed's run) when this controller no longer holds the seed's lease. */
  fence(seedId: string): Promise<void>;
  /** Asks the controller holding the agent to send it here; never rejects. */
  summon(agentId: string): Promise<void>;
  /** How often a step waiting for an agent asks again. */
  summonEveryMs: number;
}

/**
 * A step that waits is not cancelled on the agent when the controller shuts down: a cancel would
 * land in the agent's ledger, and the same call id re-sent after the restart would get that
 * cancellation instead of the step's outcome. It is only given up here (SEEDWIRE_SHUTTING_DOWN);
 * the agent finishes it and its ledger answers the resumed seed. Any other stop cancels it.
 */
function detachOnShutdown(signal: AbortSignal): { signal: AbortSignal; detached: Promise<never>; dispose: () => void } {
  const cancel = new AbortController();
  let onStop: () => void = () => undefined;
  const detached = new Promise<never>((_resolve, reject) => {
    onStop = (): void => {
      if (signal.reason === ('shutdown' satisfies StopReason)) reject(new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down; the step continues on the agent'));
      // The new owner re-sends the same call id: a cancel in the agent's ledger would answer it.
      else if (signal.reason === ('fenced' satisfies StopReason)) reject(new SeedwireError('SEEDWIRE_CANCELED', 'fenced: another controller holds the seed now; the step continues on the agent'));
      else cancel.abort(signal.reason);
    };
    if (signal.aborted) onStop();
    else signal.addEventListener('abort', onStop, { once: true });
  });
  detached.catch(() => undefined);
  return { signal: cancel.signal, detached, dispose: () => signal.removeEventListener('abort', onStop) };
}

export function throwIfStopped(signal: AbortSignal): void {
  if (signal.aborted) throw new SeedwireError('SEEDWIRE_CANCELED', String(signal.reason));
}

export function createAgentSteps(hub: AgentHub, operations: OperationRunner, reconnectWaitMs: number, hooks: StepHooks | null = null): AgentSteps {
  async function waitForAgent(agentId: string, signal: AbortSignal, waitMs = reconnectWaitMs): Promise<void> {
    if (hub.isConnected(agentId)) return;
    const timeout = AbortSignal.timeout(waitMs);
    // In cluster mode the agent may be held by another controller: ask it over, again while we
    // wait (it may only reach a controller, or the bus come back, after the first ask).
    let summons: NodeJS.Timeout | undefined;
    if (hooks) {
      void hooks.summon(agentId); // never rejects
      summons = setInterval(() => void hooks.summon(agentId), hooks.summonEveryMs);
      summons.unref();
    }
    try {
      await hub.waitForAgent(agentId, AbortSignal.any([signal, timeout]));
    } catch (error) {
      if (timeout.aborted && !signal.aborted) {
        throw new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} did not reconnect within ${Math.round(waitMs / 1000)} s`, { cause: error });
      }
      throw error;
    } finally {
      clearInterval(summons);
    }
  }

  /** The one place a seed step reaches an agent. */
  async function callOnce<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: StepOptions<N>): Promise<OpResultOf<N>> {
    const { callId, signal, onProgress, seedId, stage } = options;
    const onDisconnect = options.onDisconnect ?? 'wait';
    // A bulk call ('fail') is cancelled by any stop; a waiting one is only given up on shutdown.
    const stop = onDisconnect === 'wait' ? detachOnShutdown(signal) : null;
    // A waiting step outlives a dropped link; in cluster mode the agent may come back to another
    // controller, so while it is not here it is asked over again.
    const summons =
      stop && hooks
        ? setInterval(() => {
            if (!hub.isConnected(agentId)) void hooks.summon(agentId); // never rejects
          }, hooks.summonEveryMs)
        : undefined;
    summons?.unref();
    try {
      const call = operations.run(agentId, op, params, {
        actor: `seed:${seedId}`,
        seedId,
        stage,
        callId,
        signal: stop?.signal ?? signal,
        onDisconnect,
        ...(onProgress ? { onProgress } : {}),
      });
      if (!stop) return (await call).result;
      call.catch(() => undefined); // after a detach, the runner's and the hub's close settle it
      return (await Promise.race([call, stop.detached])).result;
    } finally {
      clearInterval(summons);
      stop?.dispose();
    }
  }

  async function step<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: StepOptions<N>): Promise<OpResultOf<N>> {
    const { signal } = options;
    // Fencing: no step reaches an agent unless this controller still holds the seed's lease.
    if (options.onDisconnect === 'fail') {
      await hooks?.fence(options.seedId);
      return callOnce(agentId, op, params, options);
    }
    for (;;) {
      throwIfStopped(signal);
      await hooks?.fence(options.seedId);
      await waitForAgent(agentId, signal, options.waitMs);
      await hooks?.fence(options.seedId);
      try {
        return await callOnce(agentId, op, params, options);
      } catch (error) {
        const err = toSeedwireError(error);
        if (signal.aborted || !LINK_ERRORS.has(err.code)) throw err;
      }
    }
  }

  return { step, waitForAgent };
}
