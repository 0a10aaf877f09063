/** Snapshot names: validated even though op params are, because the seed code calls backends directly. */
import { SeedwireError } from '../../shared/errors.js';

const NAME = /^[A-Za-z0-9._-]{1,100}$/;

export function validateSnapshotName(name: string): string {
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `snapshot name ${JSON.stringify(name)}: letters, digits and . _ - only, at most 100`);
  }
  return name;
}

/** The default name: the UTC time as 20261125-063000. */
export function makeSnapshotName(now: Date = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}-${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
}

/** POSIX shell single-quoting: safe for any string, including quotes and newlines. */
export function quoteShell(arg: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
