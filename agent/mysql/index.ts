/** MySQL host control for ops, facts and the seed code. */
import { SeedwireError } from '../../shared/errors.js';
import type { AgentConfig, MysqlConfig } from '../config/schema.js';

export { checkMysqlRunning, startMysql, stopMysql, waitForMysqlState, STATUS_TIMEOUT_MS, type ServiceDeps } from './service.js';
export { measureDiskUsage, measureFreeSpace } from './disk.js';
export { readLogTail, takeLastLines } from './error-log.js';
export { deleteDatadirContents, validateDeleteTarget, type DeleteDatadirOptions } from './datadir.js';
export { inspectMarker, readIncompleteMarker, removeIncompleteMarker, requireSeedMarker, syncDirectory, writeIncompleteMarker, type MarkerContent } from './marker.js';
export { assertDatadirUnused, inspectDatadirUse, runWhileGuarded, watchDatadir, GUARD_RECHECK_MS, type DatadirWatch, type GuardDeps, type GuardOptions } from './guard.js';
export { runnerFor, describeFailure, shellQuote, type Runner, type RunnerOptions } from './runner.js';
export { readBinlogCoordinates, type DatadirBinlogPosition } from './binlog.js';

/** The mysql section, or SEEDWIRE_OP_REFUSED naming it (the dispatcher checks `requires` too). */
export function requireMysql(config: AgentConfig): MysqlConfig {
  if (!config.mysql) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'this agent has no mysql section; set mysql.datadir and the mysql.*Command keys');
  return config.mysql;
}
