/**
 * The controller's store: everything it persists, behind one asynchronous interface with two
 * implementations, SQLite in --data-dir (sqlite.ts, the default) and PostgreSQL for cluster mode
 * (postgres.ts). docs/architecture.md ("The store") and docs/scale-out.md say what each holds.
 */
import type { SeedStore } from '../seed/store.js';
import type { AgentStore } from './agents.js';
import type { AuditStore } from './audit.js';
import type { IdentityStore } from './identities.js';
import type { OperationStore } from './operations.js';
import type { OutputStore } from './output.js';
import type { ThroughputStore } from './throughput.js';

export type StoreKind = 'sqlite' | 'postgres';

export interface AdminTokenStore {
  /**
   * The admin token generated for this controller (or cluster), created on first use and reused
   * afterwards. `path`: the file that holds it when the store keeps it in one.
   */
  ensure(): Promise<{ token: string; generated: boolean; path: string | null }>;
}

/** The sub-stores; inside `transaction` they all write through the same transaction. */
export interface StoreParts {
  readonly agents: AgentStore;
  readonly identities: IdentityStore;
  readonly operations: OperationStore;
  readonly output: OutputStore;
  readonly audit: AuditStore;
  readonly seeds: SeedStore;
  readonly throughput: ThroughputStore;
}

export interface Store extends StoreParts {
  readonly kind: StoreKind;
  /** Where it is, for logs: a file path, or a URL without its password. */
  readonly location: string;
  readonly adminToken: AdminTokenStore;
  /**
   * Runs `fn` in one transaction: every write through `tx` commits together or not at all (an
   * operation's row and its audit row, for one). Other callers do not see its writes before.
   */
  transaction<T>(fn: (tx: StoreParts) => Promise<T>): Promise<T>;
  /** Idempotent. */
  close(): Promise<void>;
}
