/** Small checks several tests share. */
import type { SeedwireError } from '../../shared/errors.js';

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
