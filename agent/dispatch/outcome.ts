/** Turning what a handler returned or threw into the frame that reports it. */
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { ErrorFrame, ResultFrame } from '../../shared/frames.js';
import type { OpResult } from '../ops/types.js';

export function makeResultFrame(id: string, value: OpResult, durationMs: number): ResultFrame {
  return { t: 'result', id, result: value.result ?? null, exitCode: value.exitCode ?? null, durationMs: Math.max(0, Math.round(durationMs)) };
}

/** errno codes that mean a full file system (or quota): the operator's to fix, not an internal fault. */
const NO_SPACE_ERRNOS: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/** Like toSeedwireError, but a file system that filled up says so (SEEDWIRE_NO_SPACE) instead of SEEDWIRE_INTERNAL. */
export function normaliseOpError(error: unknown): SeedwireError {
  if (!(error instanceof SeedwireError) && error instanceof Error) {
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno !== undefined && NO_SPACE_ERRNOS.has(errno)) {
      return new SeedwireError('SEEDWIRE_NO_SPACE', `${error.message} (the file system is full: free space on it and run the operation again)`, { cause: error });
    }
  }
  return toSeedwireError(error);
}

export function makeErrorFrame(id: string | null, error: unknown): ErrorFrame {
  const err = normaliseOpError(error);
  const details = err.details as { exitCode?: unknown } | undefined;
  const frame: ErrorFrame = { t: 'error', id, code: err.code, message: err.message.slice(0, 60 * 1024) };
  if (typeof details?.exitCode === 'number') frame.exitCode = details.exitCode;
  return frame;
}
