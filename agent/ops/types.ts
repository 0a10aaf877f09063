/**
 * What an operation handler sees. The dispatcher (agent/dispatch/) validates params with the
 * op's schema, checks `requires`, builds the context, and turns a returned value into a result
 * frame and a thrown SeedwireError into an error frame. A handler never talks to the socket.
 */
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Facts } from '../../shared/frames.js';
import type { AgentConfig } from '../config/schema.js';
import type { CommandResult, RunOptions } from '../exec/run.js';
import type { StreamPort } from '../streams/types.js';

export interface OpContext {
  callId: string;
  /** Aborted on cancel, on shutdown past the drain, or when the op's timeout passes. */
  signal: AbortSignal;
  log: Logger;
  config: AgentConfig;
  /** Stream live output to the caller (ordered, bounded while disconnected). */
  output(stream: 'stdout' | 'stderr', text: string): void;
  /** Report structured progress (seed transfer counters, stages). */
  progress(data: Record<string, unknown>): void;
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

export interface OpResult {
  result: unknown;
  /** For command-like ops: the command's exit code, reported alongside the result. */
  exitCode?: number | null;
}

export interface OpDefinition<S extends z.ZodType = z.ZodType> {
  name: string;
  params: S;
  /** Config sections the op needs; missing ones refuse the op with SEEDWIRE_OP_REFUSED naming the key. */
  requires?: OpRequirement[];
  /** The op changes host state: facts are refreshed after it ends. */
  mutates?: boolean;
  run(ctx: OpContext, params: z.output<S>): Promise<OpResult>;
}

/** Helper so each op file gets its params typed from the schema. */
export function defineOp<S extends z.ZodType>(def: OpDefinition<S>): OpDefinition<S> {
  return def;
}

/** Collects facts; implemented in agent/facts.ts from the mysql and snapshot modules. */
export type CollectFacts = (signal?: AbortSignal) => Promise<Facts>;
