/** Seed records as stored and as the API shows them (README "HTTP API", docs/seed-flow.md). */
import type { SeedResult } from '../../shared/ops.js';
import type { Logger } from 'pino';
import type { EventBus } from '../events/types.js';
import type { AgentHub } from '../hub/types.js';
import type { SeedOwnership } from './lease.js';
import type { SeedMethodName } from './methods/index.js';

export type { SeedMethodName };
import type { OperationRunner } from '../ops/types.js';
import type { StoreParts } from '../store/types.js';

export const SEED_STAGES = ['precheck', 'prepare-source', 'prepare-target', 'transfer', 'verify', 'finalize-target', 'cleanup-source'] as const;
export type StageName = (typeof SEED_STAGES)[number];
export type StageState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
export type SeedState = 'pending' | 'running' | 'succeeded' | 'failed' | 'aborted';
export type Compression = 'none' | 'gzip' | 'zstd';

export interface StageView {
  name: StageName;
  state: StageState;
  startedAt: string | null;
  endedAt: string | null;
  message: string | null;
}

export interface SeedView {
  id: string;
  source: string;
  target: string;
  method: SeedMethodName;
  /** As requested (`auto` allowed). */
  compression: Compression | 'auto';
  /** What the transfer actually uses. */
  effectiveCompression: Compression;
  startTarget: boolean;
  /** Bandwidth cap for the transfer, bytes per second (null: none). */
  maxBytesPerSec: number | null;
  /** Transfer lanes the seed uses (as requested, else the controller's default; 1 for a backup seed). */
  lanes: number;
  state: SeedState;
  stage: StageName | null;
  bytesTotal: number | null;
  bytesDone: number;
  bytesPerSec: number | null;
  etaSeconds: number | null;
  createdAt: string;
  endedAt: string | null;
  error: { code: string; message: string } | null;
  /** A succeeded seed's copy: files, bytes, digest, attempts, binlog coordinates (shared/ops.ts SeedResultSchema). */
  result: SeedResult | null;
  /** Transfer attempts (1 + resumes; over several lanes, 1 + every lane's resumes). */
  attempts: number;
  stages: StageView[];
}

export interface AuditRecord {
  actor: string;
  agentId: string | null;
  action: string;
  params?: unknown;
  outcome: 'ok' | 'started' | 'failed' | 'refused' | 'aborted';
  message?: string | null;
}

export interface SeedDeps {
  /** Where seeds, their stages and throughput series are kept (the controller's store). */
  store: Pick<StoreParts, 'seeds' | 'throughput'>;
  hub: AgentHub;
  /** Runs every agent-side step of a seed as an operation linked to it. */
  operations: OperationRunner;
  bus: EventBus;
  /** Awaited: a seed's audit row is written before the step it records goes on. */
  audit: (record: AuditRecord) => Promise<void>;
  log: Logger;
  /** How long a seed waits for a disconnected agent before failing. */
  reconnectWaitMs?: number;
  /** Cluster mode (several controllers on one store): seed leases; absent, this controller owns every seed. */
  ownership?: SeedOwnership | null;
}
