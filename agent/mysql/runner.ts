/**
 * How host modules run commands: an op passes its `ctx.run` (output streamed, signal bound);
 * facts and the seed code pass `runnerFor(signal)`.
 */
import { runCommand, type CommandResult } from '../exec/run.js';

export { describeFailure } from '../exec/failure.js';

export interface RunnerOptions {
  timeoutMs?: number;
  /** Do not stream the command's output to the caller. */
  quiet?: boolean;
  /** Bytes of stdout/stderr kept for the result (runCommand's default is 8 KiB). */
  tailBytes?: number;
}

export type Runner = (command: string, options?: RunnerOptions) => Promise<CommandResult>;

/** A Runner over runCommand that only collects output tails. */
export function runnerFor(signal?: AbortSignal): Runner {
  return (command, options = {}) => runCommand(command, { signal, timeoutMs: options.timeoutMs, tailBytes: options.tailBytes });
}

/** A single-quoted bash word: what the datadir path and user become in the commands the agent builds. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
