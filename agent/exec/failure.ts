/**
 * The one formatter of a command or tool that did not succeed: how it ended and the last lines
 * it wrote. Service control, snapshots, seed steps and the seed's tool children all use it, so
 * every failure reads alike.
 */
import { SeedwireError } from '../../shared/errors.js';

/** What a command's end looks like to the formatter (a CommandResult, or a tool child's exit). */
export interface CommandEnd {
  exitCode: number | null;
  signal: string | null;
  timedOut?: boolean;
  isCanceled?: boolean;
  stderrTail: string;
  /** Shown when stderr is empty. */
  stdoutTail?: string;
}

/** Lines of output an error message keeps. */
const SHOWN_LINES = 20;

/** "exited 2: <last lines>", "was killed by SIGKILL", "timed out", ... */
export function describeFailure(end: CommandEnd): string {
  const text = (end.stderrTail.trim() || (end.stdoutTail ?? '').trim()).split('\n').slice(-SHOWN_LINES).join('\n');
  const how = end.timedOut ? 'timed out' : end.isCanceled ? 'was canceled' : end.signal ? `was killed by ${end.signal}` : `exited ${end.exitCode}`;
  return text ? `${how}: ${text}` : how;
}

/** SEEDWIRE_COMMAND_FAILED: `what` and how it ended; the exit code goes to the error frame. */
export function commandFailed(what: string, end: CommandEnd): SeedwireError {
  return new SeedwireError('SEEDWIRE_COMMAND_FAILED', `${what} ${describeFailure(end)}`, { details: { exitCode: end.exitCode } });
}
