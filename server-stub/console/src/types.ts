/**
 * The API shapes the console reads (CONTRACT section 2). Mirrors of the controller's types, kept
 * here because the browser bundle must not import server code. Fields the console does not need
 * are left out; optional ones may be missing from older or partial answers.
 */
export interface Snapshot {
  name: string;
  path: string;
  createdAt: string | null;
  sizeBytes: number | null;
  mounted: boolean;
}

export interface Mount {
  name: string;
  mountPoint: string;
  dataPath: string;
}

export interface Facts {
  hostname?: string;
  mysqlConfigured?: boolean;
  mysqlRunning: boolean | null;
  mysqlPort?: number | null;
  datadir: string | null;
  datadirBytes: number | null;
  datadirFreeBytes: number | null;
  incompleteSeed?: string | null;
  snapshotBackend: 'lvm' | 'btrfs' | 'none' | string;
  snapshots: Snapshot[];
  mounted: Mount | null;
  backupTool?: string | null;
  customCommands?: string[];
  collectedAt?: string;
}

export interface Agent {
  id: string;
  hostname: string;
  datacenter: string | null;
  connected: boolean;
  connectedAt: string | null;
  lastSeenAt: string | null;
  version: string;
  capabilities: string[];
  facts?: Facts | null;
  /** Peers split by datacenter: ids, or objects with an id (the controller sends `{id, connected, ...}`). */
  peers?: { local: PeerRef[]; remote: PeerRef[] };
}

export type PeerRef = string | { id: string; connected?: boolean; snapshotBackend?: string | null; hasSnapshots?: boolean };

export function peerId(peer: PeerRef): string {
  return typeof peer === 'string' ? peer : peer.id;
}

export type OperationState = 'running' | 'succeeded' | 'failed' | 'canceled';

export interface ApiErrorBody {
  code: string;
  message: string;
}

export interface Operation {
  id: string;
  agentId: string;
  op: string;
  params: Record<string, unknown>;
  state: OperationState;
  createdAt: string;
  endedAt: string | null;
  result: unknown;
  error: ApiErrorBody | null;
  exitCode: number | null;
  outputTail?: string;
  actor?: string;
}

export type SeedState = 'pending' | 'running' | 'succeeded' | 'failed' | 'aborted';
export type StageState = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';

export interface Stage {
  name: string;
  state: StageState;
  startedAt: string | null;
  endedAt: string | null;
  message: string | null;
}

export interface Seed {
  id: string;
  source: string;
  target: string;
  method: string;
  compression: string;
  effectiveCompression?: string;
  startTarget?: boolean;
  state: SeedState;
  stage: string | null;
  bytesTotal: number | null;
  bytesDone: number;
  bytesPerSec: number | null;
  etaSeconds: number | null;
  createdAt: string;
  endedAt: string | null;
  error: ApiErrorBody | null;
  attempts?: number;
  stages: Stage[];
}

export interface AuditEntry {
  at: string;
  actor: string;
  agentId: string | null;
  action: string;
  params: unknown;
  outcome: string;
  message: string | null;
}

export type EventType = 'agent' | 'operation' | 'output' | 'seed' | 'audit' | 'gap';
export const EVENT_TYPES: readonly EventType[] = ['agent', 'operation', 'output', 'seed', 'audit', 'gap'];

export interface LiveEvent {
  type: EventType;
  /** The SSE id; NaN when the controller sent none. */
  seq: number;
  data: unknown;
}

export const SEED_METHODS = ['snapshot', 'cold', 'backup'] as const;
export const COMPRESSIONS = ['none', 'gzip', 'zstd'] as const;
