/** The operation runner's surface: used by the HTTP API and by the seed state machine. */
import type { OpName, OpParamsInput, OpProgressOf, OpResultOf } from '../../shared/ops.js';
import type { CallOutcome } from '../hub/types.js';

export type OperationState = 'running' | 'succeeded' | 'failed' | 'canceled';

export interface OperationError {
  code: string;
  message: string;
  details?: unknown;
}

/** As `GET /api/operations/:id` shows it (README, "HTTP API"), plus the actor who started it. */
export interface Operation {
  id: string;
  agentId: string;
  op: string;
  params: Record<string, unknown>;
  state: OperationState;
  createdAt: string;
  endedAt: string | null;
  result: unknown;
  error: OperationError | null;
  exitCode: number | null;
  outputTail: string;
  actor: string;
  /** The seed this operation was a step of; null for an operation started on its own. */
  seedId: string | null;
}

export interface RunOptions<N extends OpName = OpName> {
  /** "admin" for API calls, "seed:<id>" for the seed machine (the only actor allowed the internal seed-* ops). */
  actor: string;
  /** Links the operation to a seed: stored, shown as `seedId`, in its audit rows. */
  seedId?: string;
  /** The seed stage this step belongs to (audit rows only). */
  stage?: string;
  /** The controller that asked for it, when it was routed here (its log lines only). */
  requester?: string;
  /**
   * The operation's id, which is also the agent call id. A row with this id that already exists
   * is re-attached, not duplicated: still tracked → the same run; running but untracked (after a
   * controller restart) → resumed; ended by a lost link → reopened and sent again (the agent's
   * ledger runs an id once); ended otherwise → its recorded outcome.
   */
  callId?: string;
  /** Aborting cancels the operation (a cancel frame goes to the agent). */
  signal?: AbortSignal;
  timeoutMs?: number;
  onOutput?: (chunk: { seq: number; stream: 'stdout' | 'stderr'; data: string }) => void;
  /** Progress of the op's shape (shared/ops.ts OP_PROGRESS). */
  onProgress?(data: OpProgressOf<N>): void;
  onDisconnect?: 'wait' | 'fail';
}

export interface StartedOperation {
  operation: Operation;
  /** Resolves with the final operation row; never rejects. */
  done: Promise<Operation>;
}

export interface OperationRunner {
  /**
   * Validates, persists and sends an operation (the row and its audit row are stored before the
   * call goes out). Rejects with a SeedwireError for an unknown op (SEEDWIRE_OP_UNKNOWN), bad
   * params (SEEDWIRE_BAD_PARAMS), unknown or offline agent, or while shutting down.
   */
  start(agentId: string, op: string, params: Record<string, unknown>, options: RunOptions): Promise<StartedOperation>;
  /** start() and wait for the end: resolves with the agent's outcome, rejects with a SeedwireError. */
  run<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: RunOptions<N>): Promise<CallOutcome<OpResultOf<N>> & { operation: Operation }>;
  get(id: string): Promise<Operation | null>;
  /** Newest first; with `seedId`, that seed's steps in the order they started. */
  list(filter: { agentId?: string; seedId?: string; limit?: number }): Promise<Operation[]>;
  /** The operation once it ended or after `ms`, whichever comes first; null if unknown. */
  wait(id: string, ms: number, signal?: AbortSignal): Promise<Operation | null>;
  /** Cancels a running operation of this process; returns the row (unchanged if already ended). */
  cancel(id: string, reason: string): Promise<Operation | null>;
  /** Stops taking new operations (SEEDWIRE_SHUTTING_DOWN). */
  close(): void;
}
