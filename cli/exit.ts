/**
 * Exit codes scripts can trust (README "Command line"), and the one place an error becomes one.
 */
import { ApiError } from '../client/api.js';
import { SeedwireError } from '../shared/errors.js';

export const EXIT = {
  ok: 0,
  /** Unexpected failures: a bug, or a controller answering 5xx. */
  internal: 1,
  usage: 2,
  /** Controller unreachable, or the admin token missing or refused. */
  unreachable: 3,
  /** The controller refused (409: a failed precheck, an offline agent, an agent refusing an operation). */
  refused: 4,
  /** The seed or operation failed, or was aborted or canceled. */
  failed: 5,
  /** Ctrl-C: stopped watching; the seed or operation carries on. */
  interrupted: 130,
} as const;

/** An error the CLI reports as one line on stderr and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError(EXIT.usage, message);
}

export function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof ApiError) {
    if (error.unreachable || error.code === 'SEEDWIRE_AUTH') return EXIT.unreachable;
    if (error.httpStatus === 409) return EXIT.refused;
    // 400/404: the request named something wrong (bad params, unknown agent, seed or operation).
    if (error.httpStatus >= 400 && error.httpStatus < 500) return EXIT.usage;
    return EXIT.internal;
  }
  if (error instanceof SeedwireError && error.code === 'SEEDWIRE_CONFIG') return EXIT.usage;
  return EXIT.internal;
}

/** The line printed for an error: the message, and the API's code when there is one. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.apiCode})`;
  if (error instanceof Error) return error.message;
  return String(error);
}
