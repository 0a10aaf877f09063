/** Small checks several tests share. */
import { SeedwireError } from '../../shared/errors.js';

/** The error code a synchronous call throws, or 'no error'. */
export function errorCodeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return (error as SeedwireError).code;
  }
  return 'no error';
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The SeedwireError a promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejectionOf(promise: Promise<unknown>): Promise<SeedwireError> {
  const outcome = await promise.then(
    (value: unknown) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if ('error' in outcome && outcome.error instanceof SeedwireError) return outcome.error;
  throw new Error(`expected a SeedwireError, got ${'error' in outcome ? String(outcome.error) : `a result: ${JSON.stringify(outcome.value)}`}`);
}
