/**
 * The API shapes the console reads (README, "HTTP API"). They are the controller's own types,
 * imported type-only (esbuild erases these imports: no server code reaches the bundle), so the
 * console cannot drift from what the controller sends.
 */
export type { Facts, Mount, Snapshot } from '../../../shared/frames.js';
export type { Operation, OperationState } from '../../ops/types.js';
export type { SeedState, SeedView as Seed, StageState, StageView as Stage } from '../../seed/types.js';
export type { AuditEntry } from '../../types.js';
export type { EventType } from '../../events/types.js';
export type { ThroughputMark, ThroughputSample, ThroughputView } from '../../seed/throughput.js';
import type { Facts } from '../../../shared/frames.js';
import type { AgentView } from '../../api/views.js';
import type { EventType } from '../../events/types.js';

/** GET /api/agents rows, and GET /api/agents/:id with facts and peers. */
export interface Agent extends AgentView {
  facts?: Facts | null;
  /** Peers split by datacenter: ids, or objects with an id (the controller sends `{id, connected, ...}`). */
  peers?: { local: PeerRef[]; remote: PeerRef[] };
}

export type PeerRef = string | { id: string; connected?: boolean; snapshotBackend?: string | null; hasSnapshots?: boolean };

export function peerId(peer: PeerRef): string {
  return typeof peer === 'string' ? peer : peer.id;
}

export interface ApiErrorBody {
  code: string;
  message: string;
}

export const EVENT_TYPES: readonly EventType[] = ['agent', 'operation', 'output', 'seed', 'audit', 'gap'];

export interface LiveEvent {
  type: EventType;
  /** The SSE id; NaN when the controller sent none. */
  seq: number;
  data: unknown;
}

export const SEED_METHODS = ['snapshot', 'cold', 'backup'] as const;
export const COMPRESSIONS = ['none', 'gzip', 'zstd'] as const;
