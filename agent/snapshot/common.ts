/** Pieces the btrfs and LVM backends share: checked commands, the mount point, the datadir path inside a snapshot. */
import { mkdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import type { CommandResult } from '../exec/run.js';
import { commandFailed } from '../exec/failure.js';
import { runnerFor, type Runner } from '../mysql/runner.js';
import type { CallOptions } from './types.js';

export function pickRunner(options: CallOptions = {}): Runner {
  return options.run ?? runnerFor(options.signal);
}

/** Runs a command and turns any failure into SEEDWIRE_COMMAND_FAILED (stderr in the message). */
export async function runChecked(run: Runner, command: string, what: string, options: { quiet?: boolean; tailBytes?: number } = {}): Promise<CommandResult> {
  const result = await run(command, options);
  if (result.isCanceled) throw new SeedwireError('SEEDWIRE_CANCELED', `${what} was canceled`);
  if (result.timedOut) throw new SeedwireError('SEEDWIRE_TIMEOUT', `${what} timed out`);
  if (result.exitCode !== 0) throw commandFailed(`${what} failed: \`${command}\``, result);
  return result;
}

/** The mount point as the kernel names it (symlinks resolved), or the configured path while it does not exist. */
export async function resolveMountPoint(mountPoint: string): Promise<string> {
  try {
    return await realpath(mountPoint);
  } catch {
    return mountPoint;
  }
}

export async function ensureMountPoint(mountPoint: string): Promise<string> {
  await mkdir(mountPoint, { recursive: true });
  return realpath(mountPoint);
}

/**
 * Where the datadir appears inside a mounted snapshot: mountPoint + (datadir relative to the
 * snapshotted volume's root). Refuses a datadir outside that volume, naming both keys.
 */
export function deriveDataPath(mountPoint: string, volumeRoot: string, datadir: string | undefined, volumeKey: string): string {
  if (datadir === undefined) return mountPoint;
  const inside = relative(volumeRoot, datadir);
  if (inside.startsWith('..') || isAbsolute(inside)) {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', `mysql.datadir (${datadir}) is not inside ${volumeKey} (${volumeRoot}), so a snapshot of it does not hold the datadir`);
  }
  return inside === '' ? mountPoint : join(mountPoint, inside);
}

export function refuseUnknown(name: string): never {
  throw new SeedwireError('SEEDWIRE_OP_REFUSED', `no snapshot named ${name}`);
}
