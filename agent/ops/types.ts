/**
 * What an operation handler sees. The dispatcher (agent/dispatch/) validates params with the
 * op's schema, checks `requires`, builds the context, and turns a returned value into a result
 * frame and a thrown SeedwireError into an error frame. A handler never talks to the socket.
 */
import type { Logger } from 'pino';
import type { Facts } from '../../shared/frames.js';
import type { ALL_OP_PARAMS, OpName, OpParams, OpProgressOf, OpResultOf } from '../../shared/ops.js';
import type { AgentConfig } from '../config/schema.js';
import type { CommandResult, RunOptions } from '../exec/run.js';
import type { StreamPort } from '../streams/types.js';

export interface OpContext<N extends OpName = OpName> {
  callId: string;
  /** Aborted on cancel, on shutdown past the drain, or when the op's timeout passes. */
  signal: AbortSignal;
  log: Logger;
  config: AgentConfig;
  /** Stream live output to the caller (ordered, bounded while disconnected). */
  output(stream: 'stdout' | 'stderr', text: string): void;
  /** Report structured progress (seed transfer counters), shaped as shared/ops.ts OP_PROGRESS says. */
  progress(data: OpProgressOf<N>): void;
  /**
   * Run a shell command through bash with this op's signal; its output is streamed as the op's
   * output unless `quiet`.
   */
  run(command: string, options?: Omit<RunOptions, 'signal' | 'onOutput'> & { quiet?: boolean }): Promise<CommandResult>;
  /** Bulk data streams over the connection (seed transfer). */
  streams: StreamPort;
  /** Ask the agent to re-collect facts and push them if they changed. */
  refreshFacts(): void;
}

export type OpRequirement = 'mysql' | 'snapshot' | 'backup';

/** What a handler returns: the op's result as shared/ops.ts defines it. */
export interface OpResult<N extends OpName = OpName> {
  result: OpResultOf<N>;
  /** For command-like ops: the command's exit code, reported alongside the result. */
  exitCode?: number | null;
}

/**
 * One operation's handler. Its name ties it to the contract in shared/ops.ts: the params schema
 * must be that op's, `run` gets that op's params and must return that op's result.
 */
export interface OpDefinition<N extends OpName = OpName> {
  name: N;
  params: (typeof ALL_OP_PARAMS)[N];
  /** Config sections the op needs; missing ones refuse the op with SEEDWIRE_OP_REFUSED naming the key. */
  requires?: OpRequirement[];
  /** The op changes host state: facts are refreshed after it ends. */
  mutates?: boolean;
  run(ctx: OpContext<N>, params: OpParams<N>): Promise<OpResult<N>>;
}

/** Helper so each op file gets its params and result typed from the contract. */
export function defineOp<N extends OpName>(def: OpDefinition<N>): OpDefinition<N> {
  return def;
}

/** Collects facts; implemented in agent/facts.ts from the mysql and snapshot modules. */
export type CollectFacts = (signal?: AbortSignal) => Promise<Facts>;
