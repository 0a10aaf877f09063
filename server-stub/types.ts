/**
 * What the controller core hands to its plugins (seed machine, console) and to its own modules.
 * createController (app.ts) builds one ControllerDeps per controller instance.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Cluster } from './cluster/cluster.js';
import type { AgentHub } from './hub/types.js';
import type { EventBus } from './events/types.js';
import type { OperationRunner } from './ops/types.js';
import type { AuditStore } from './store/audit.js';
import type { Store } from './store/types.js';

export interface AuditEntry {
  at: string;
  /** "admin" for API calls, "seed:<id>" for the seed machine, "system" for the controller itself. */
  actor: string;
  agentId: string | null;
  action: string;
  params: unknown;
  /** "started", "succeeded", "failed", "canceled", "refused", ... */
  outcome: string;
  message: string | null;
}

export interface Audit {
  /**
   * Persists one row and publishes an `audit` event; resolves with the stored row. `through`: the
   * audit store of a transaction the row belongs to (store.transaction).
   */
  record(entry: Omit<AuditEntry, 'at' | 'message' | 'params' | 'agentId'> & Partial<Pick<AuditEntry, 'message' | 'params' | 'agentId'>>, through?: AuditStore): Promise<AuditEntry>;
  /**
   * Publishes the `audit` event of a row the store already wrote in a statement of its own (an
   * operation's start and end rows, written with the operation's row in one round trip).
   */
  publish(row: AuditEntry): void;
  /** Newest first. */
  list(limit: number): Promise<AuditEntry[]>;
}

export interface ControllerConfig {
  host: string;
  port: number;
  dataDir: string;
  /** The enrollment token (null when only per-agent tokens are used). */
  agentToken: string | null;
  /** Per-agent tokens, agentId → token. */
  agentTokens: Readonly<Record<string, string>>;
  adminToken: string;
  tls: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer } | null;
  heartbeatMs: number;
  deadAfterMs: number;
  handshakeTimeoutMs: number;
  drainMs: number;
}

export interface ControllerDeps {
  /** Everything the controller persists (SQLite, or PostgreSQL with --store). */
  store: Store;
  hub: AgentHub;
  bus: EventBus;
  audit: Audit;
  operations: OperationRunner;
  log: Logger;
  config: Readonly<ControllerConfig>;
  /** Cluster mode (`--bus`): routing to other controllers' agents; null for a single controller. */
  cluster?: Cluster | null;
  /**
   * Runs `fn` once the controller listens and its cluster link exists (its advertise URL is known),
   * before createController resolves. Absent where a plugin is mounted outside createController.
   */
  onStarted?: (fn: () => Promise<void> | void) => void;
}

/**
 * Registered after the core routes. May return a disposer, awaited first when the controller
 * drains (before agent links close), so long-running work can stop cleanly rather than fail.
 */
export type PluginDisposer = () => Promise<void> | void;
export type ControllerPlugin = (app: FastifyInstance, deps: ControllerDeps) => void | PluginDisposer | Promise<void | PluginDisposer>;
