/**
 * Collects the facts an agent pushes on connect and whenever they change. Each part fails soft
 * (null, or [] for snapshots): a broken status command must not hide the disk facts. Failures
 * are logged by code and message only (never command output, which may carry anything).
 */
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import type { Facts } from '../shared/frames.js';
import type { AgentConfig } from './config/schema.js';
import { AGENT_LIMITS } from './limits.js';
import { checkMysqlRunning, measureDiskUsage, measureFreeSpace, readIncompleteMarker, runnerFor } from './mysql/index.js';
import { snapshotBackendFor } from './snapshot/index.js';

async function trySoft<T>(what: string, fallback: T, work: () => Promise<T>, log?: Logger): Promise<T> {
  try {
    return await work();
  } catch (error) {
    const e = error as { code?: string; message?: string };
    log?.debug({ part: what, code: e.code, err: e.message?.slice(0, 300) }, 'fact unavailable');
    return fallback;
  }
}

export async function collectFacts(config: AgentConfig, signal?: AbortSignal, log?: Logger): Promise<Facts> {
  const mysql = config.mysql;
  const run = runnerFor(signal);
  const snapshots = snapshotBackendFor(config);

  const [mysqlRunning, datadirBytes, datadirFreeBytes, incompleteSeed, snapshotList, mounted] = await Promise.all([
    mysql ? trySoft('mysqlRunning', null, () => checkMysqlRunning({ mysql, run, signal }, AGENT_LIMITS.factsStatusTimeoutMs), log) : null,
    mysql ? trySoft('datadirBytes', null, () => measureDiskUsage(mysql.datadir, signal), log) : null,
    mysql ? trySoft('datadirFreeBytes', null, () => measureFreeSpace(mysql.datadir), log) : null,
    mysql ? trySoft('incompleteSeed', null, () => readIncompleteMarker(mysql.datadir), log) : null,
    trySoft('snapshots', [], () => snapshots.list({ signal, run }), log),
    trySoft('mounted', null, () => snapshots.mounted({ signal, run }), log),
  ]);

  return {
    hostname: config.hostname,
    datacenter: config.datacenter,
    mysqlConfigured: mysql !== undefined,
    mysqlRunning,
    mysqlPort: mysql?.port ?? null,
    datadir: mysql?.datadir ?? null,
    datadirBytes,
    datadirFreeBytes,
    incompleteSeed,
    snapshotBackend: config.snapshot?.backend ?? 'none',
    snapshots: snapshotList,
    mounted,
    backupTool: config.backup?.tool ?? null,
    customCommands: Object.keys(config.customCommands),
    cpus: availableParallelism(),
    collectedAt: new Date().toISOString(),
  };
}
