/**
 * MySQL service control through the configured commands only (seedwire holds no MySQL
 * credentials): status is the status command's exit code, start/stop run their command and then
 * wait until the status command confirms the new state.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { SeedwireError } from '../../shared/errors.js';
import type { MysqlConfig } from '../config/schema.js';
import { commandFailed } from '../exec/failure.js';
import { AGENT_LIMITS } from '../limits.js';
import type { Runner } from './runner.js';
import { readIncompleteMarker } from './marker.js';

/** Upper bound for one status command; the value and why: agent/limits.ts. */
export const STATUS_TIMEOUT_MS = AGENT_LIMITS.mysqlStatusTimeoutMs;

export interface ServiceDeps {
  mysql: MysqlConfig;
  run: Runner;
  signal?: AbortSignal;
}

/** Runs mysql.statusCommand: exit 0 = running, any other exit = not running. */
export async function checkMysqlRunning(deps: ServiceDeps, timeoutMs: number = STATUS_TIMEOUT_MS): Promise<boolean> {
  const result = await deps.run(deps.mysql.statusCommand, { quiet: true, timeoutMs });
  if (result.isCanceled) throw new SeedwireError('SEEDWIRE_CANCELED', 'mysql.statusCommand was canceled');
  if (result.timedOut) throw new SeedwireError('SEEDWIRE_TIMEOUT', `mysql.statusCommand did not finish within ${timeoutMs} ms`);
  if (result.exitCode === null) throw commandFailed('mysql.statusCommand', result);
  return result.exitCode === 0;
}

export async function startMysql(deps: ServiceDeps): Promise<boolean> {
  const marker = await readIncompleteMarker(deps.mysql.datadir);
  if (marker !== null) {
    throw new SeedwireError(
      'SEEDWIRE_OP_REFUSED',
      `refusing to start MySQL: ${deps.mysql.datadir} holds an incomplete seed (${marker}); finish or clean up the seed first`,
    );
  }
  return switchMysql(deps, true);
}

export async function stopMysql(deps: ServiceDeps): Promise<boolean> {
  return switchMysql(deps, false);
}

async function switchMysql(deps: ServiceDeps, running: boolean): Promise<boolean> {
  const key = running ? 'mysql.startCommand' : 'mysql.stopCommand';
  const deadline = Date.now() + deps.mysql.commandTimeoutSeconds * 1000;
  if ((await checkMysqlRunning(deps)) === running) return running;

  const result = await deps.run(running ? deps.mysql.startCommand : deps.mysql.stopCommand, { timeoutMs: deps.mysql.commandTimeoutSeconds * 1000 });
  if (result.isCanceled) throw new SeedwireError('SEEDWIRE_CANCELED', `${key} was canceled`);
  if (result.timedOut) throw new SeedwireError('SEEDWIRE_TIMEOUT', `${key} did not finish within mysql.commandTimeoutSeconds (${deps.mysql.commandTimeoutSeconds} s)`);
  if (result.exitCode !== 0) throw commandFailed(key, result);

  await waitForMysqlState(deps, running, deadline);
  return running;
}

/** Polls mysql.statusCommand until it reports `running`, or fails with SEEDWIRE_TIMEOUT at `deadline`. */
export async function waitForMysqlState(deps: ServiceDeps, running: boolean, deadline: number): Promise<void> {
  for (;;) {
    const left = deadline - Date.now();
    if ((await checkMysqlRunning(deps, Math.max(1_000, Math.min(STATUS_TIMEOUT_MS, left)))) === running) return;
    if (Date.now() >= deadline) {
      throw new SeedwireError(
        'SEEDWIRE_TIMEOUT',
        `mysql.statusCommand still reports MySQL ${running ? 'stopped' : 'running'} after mysql.commandTimeoutSeconds (${deps.mysql.commandTimeoutSeconds} s)`,
      );
    }
    await delay(AGENT_LIMITS.mysqlPollMs, undefined, { signal: deps.signal }).catch(() => {
      throw new SeedwireError('SEEDWIRE_CANCELED', `waiting for MySQL to ${running ? 'start' : 'stop'} was canceled`);
    });
  }
}
