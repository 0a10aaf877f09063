/**
 * SIGHUP: re-read the configuration the agent started with (same file, flags and environment)
 * and apply what can change without a restart. Anything else that changed refuses the whole
 * reload, naming the keys, and the running configuration stays as it was: a reload is applied
 * entirely or not at all.
 */
import type { Logger } from 'pino';
import { toSeedwireError } from '../../shared/errors.js';
import type { AgentConfig } from './schema.js';

/** Top-level keys a reload may change; every op reads them from the shared config at call time. */
export const RELOADABLE_KEYS = ['customCommands', 'allowArbitraryCommands', 'logLevel'] as const;
type ReloadableKey = (typeof RELOADABLE_KEYS)[number];

export type ReloadOutcome = { outcome: 'applied'; changed: string[] } | { outcome: 'unchanged' } | { outcome: 'refused'; keys: string[] } | { outcome: 'failed'; message: string };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The dotted paths whose values differ between two configs (leaves; arrays compared whole). */
export function diffConfig(before: unknown, after: unknown, prefix = ''): string[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => diffConfig(before[key], after[key], prefix ? `${prefix}.${key}` : key));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix || '(root)'];
}

/** Which changed paths a reload may apply, and which need a restart. */
export function planReload(current: AgentConfig, next: AgentConfig): { changed: string[]; needRestart: string[] } {
  const paths = diffConfig(current, next);
  const reloadable = (path: string): boolean => (RELOADABLE_KEYS as readonly string[]).includes(path.split('.')[0] ?? '');
  return { changed: paths.filter(reloadable), needRestart: paths.filter((p) => !reloadable(p)) };
}

export interface ReloaderOptions {
  /** The running config: reloadable keys are replaced in place, so every module sees them. */
  config: AgentConfig;
  /** Loads the config again exactly as at start-up. */
  load(): AgentConfig;
  /** The root logger: its level is the config's logLevel (child loggers follow it). */
  log: Logger;
  /** After an applied reload (facts carry the custom command names). */
  onApplied?(): void;
}

export function reloadConfig(options: ReloaderOptions): ReloadOutcome {
  const { config, log } = options;
  let next: AgentConfig;
  try {
    next = options.load();
  } catch (error) {
    const message = toSeedwireError(error, 'SEEDWIRE_CONFIG').message;
    log.error({ err: { message } }, `config reload failed; the running config stays: ${message}`);
    return { outcome: 'failed', message };
  }
  const { changed, needRestart } = planReload(config, next);
  if (needRestart.length > 0) {
    log.error({ keys: needRestart }, `config reload refused: ${needRestart.join(', ')} cannot change without a restart; the running config stays`);
    return { outcome: 'refused', keys: needRestart };
  }
  if (changed.length === 0) {
    log.info('config reloaded: nothing changed');
    return { outcome: 'unchanged' };
  }
  const target = config as Pick<AgentConfig, ReloadableKey>;
  target.customCommands = next.customCommands;
  target.allowArbitraryCommands = next.allowArbitraryCommands;
  target.logLevel = next.logLevel;
  // The line saying what changed is written at whichever of the two levels is more verbose.
  const quieter = log.levels.values[next.logLevel]! > log.levelVal;
  if (!quieter) log.level = next.logLevel;
  log.info({ changed }, `config reloaded: ${changed.join(', ')}`);
  if (quieter) log.level = next.logLevel;
  options.onApplied?.();
  return { outcome: 'applied', changed };
}
