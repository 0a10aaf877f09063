/**
 * System tests need real tools (MariaDB, btrfs, loop devices, Chromium). Outside CI a missing
 * tool skips the test visibly, with the reason; in CI (CI=true) it fails, so a broken install
 * never passes as green.
 */
import { execFileSync } from 'node:child_process';

export function missingTools(tools: string[], options: { root?: boolean } = {}): string | null {
  const missing: string[] = [];
  if (options.root && process.getuid?.() !== 0) missing.push('root (loop devices and mounts)');
  for (const tool of tools) {
    try {
      execFileSync('bash', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool} || test -x /sbin/${tool}`], { stdio: 'ignore' });
    } catch {
      missing.push(tool);
    }
  }
  if (missing.length === 0) return null;
  const reason = `missing: ${missing.join(', ')}`;
  if (process.env['CI'] === 'true') throw new Error(`system test requirement not met in CI: ${reason}`);
  console.warn(`[skipped] ${reason}`);
  return reason;
}
