/**
 * Collects the facts an agent pushes on connect and whenever they change.
 * (Minimal version: the host module fills in MySQL, disk and snapshot facts.)
 */
import type { Facts } from '../shared/frames.js';
import type { AgentConfig } from './config/schema.js';

export async function collectFacts(config: AgentConfig, _signal?: AbortSignal): Promise<Facts> {
  return {
    hostname: config.hostname,
    datacenter: config.datacenter,
    mysqlConfigured: config.mysql !== undefined,
    mysqlRunning: null,
    mysqlPort: config.mysql?.port ?? null,
    datadir: config.mysql?.datadir ?? null,
    datadirBytes: null,
    datadirFreeBytes: null,
    incompleteSeed: null,
    snapshotBackend: config.snapshot?.backend ?? 'none',
    snapshots: [],
    mounted: null,
    backupTool: config.backup?.tool ?? null,
    customCommands: Object.keys(config.customCommands),
    collectedAt: new Date().toISOString(),
  };
}
