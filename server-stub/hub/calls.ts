/** Calls the controller waits for, keyed by call id. Each settles exactly once. */
import { SeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { CallOutcome, RawCallOptions } from './types.js';

/** An agent's `error` frame for a call, keeping the command's exit code. */
export class CallFailedError extends SeedwireError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly exitCode: number | null,
    details?: unknown,
  ) {
    super(code, message, { details });
  }
}

export interface PendingCall {
  id: string;
  agentId: string;
  op: string;
  options: RawCallOptions;
  /**
   * The highest output seq passed on (-1: none); a frame at or below it is a duplicate. Null:
   * unknown (a call resumed from a store that did not record it) until its first frame.
   */
  lastOutputSeq: number | null;
  /** The highest output seq stored (acknowledged to the agent); -1: none. */
  storedOutputSeq: number;
  resolve(outcome: CallOutcome): void;
  reject(error: Error): void;
}

export class CallRegistry {
  private readonly calls = new Map<string, PendingCall>();

  has(id: string): boolean {
    return this.calls.has(id);
  }

  get(id: string): PendingCall | undefined {
    return this.calls.get(id);
  }

  add(call: PendingCall): void {
    this.calls.set(call.id, call);
  }

  /** Removes the call and resolves it; false if it had already settled. */
  resolve(id: string, outcome: CallOutcome): boolean {
    const call = this.calls.get(id);
    if (!call) return false;
    this.calls.delete(id);
    call.resolve(outcome);
    return true;
  }

  reject(id: string, error: Error): boolean {
    const call = this.calls.get(id);
    if (!call) return false;
    this.calls.delete(id);
    call.reject(error);
    return true;
  }

  ofAgent(agentId: string): PendingCall[] {
    return [...this.calls.values()].filter((call) => call.agentId === agentId);
  }

  rejectAll(error: Error): void {
    for (const id of [...this.calls.keys()]) this.reject(id, error);
  }

  get size(): number {
    return this.calls.size;
  }
}
