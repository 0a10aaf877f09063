/**
 * Every agent call a seed makes once it runs (the prechecks' read-only questions aside) goes
 * through `step()`, typed by the operation contract (shared/ops.ts). This is the one seam where
 * seed steps meet the hub: recording each step as an operation linked to its seed changes
 * `callOnce` and nothing else.
 */
import { SeedwireError, toSeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { OpName, OpParamsInput, OpProgressOf, OpResultOf } from '../../shared/ops.js';
import type { AgentHub } from '../hub/types.js';
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

export function throwIfStopped(signal: AbortSignal): void {
  if (signal.aborted) throw new SeedwireError('SEEDWIRE_CANCELED', String(signal.reason));
}

export function createAgentSteps(hub: AgentHub, reconnectWaitMs: number): AgentSteps {
  async function waitForAgent(agentId: string, signal: AbortSignal, waitMs = reconnectWaitMs): Promise<void> {
    if (hub.isConnected(agentId)) return;
    const timeout = AbortSignal.timeout(waitMs);
    try {
      await hub.waitForAgent(agentId, AbortSignal.any([signal, timeout]));
    } catch (error) {
      if (timeout.aborted && !signal.aborted) {
        throw new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} did not reconnect within ${Math.round(waitMs / 1000)} s`, { cause: error });
      }
      throw error;
    }
  }

  /** The one place a seed step reaches an agent. */
  async function callOnce<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: StepOptions<N>): Promise<OpResultOf<N>> {
    const { callId, signal, onProgress } = options;
    const outcome = await hub.call(agentId, op, params, { callId, signal, onDisconnect: options.onDisconnect ?? 'wait', ...(onProgress ? { onProgress } : {}) });
    return outcome.result;
  }

  async function step<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: StepOptions<N>): Promise<OpResultOf<N>> {
    const { signal } = options;
    if (options.onDisconnect === 'fail') return callOnce(agentId, op, params, options);
    for (;;) {
      throwIfStopped(signal);
      await waitForAgent(agentId, signal, options.waitMs);
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
