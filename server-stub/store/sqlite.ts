/** The embedded store: SQLite in DATA_DIR/seedwire.db, the admin token in DATA_DIR/admin-token. */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { ensureAdminTokenFile } from './admin-token.js';
import { startCheckpointer, type Checkpointer, type CheckpointerOptions } from './checkpointer.js';
import { composeStore } from './compose.js';
import { closeDatabase, openDatabase } from './db.js';
import { createSqliteExecutor } from './sql.js';
import type { Store } from './types.js';

export interface SqliteStoreOptions {
  /** WAL checkpoints on a worker thread (checkpointer.ts); false: SQLite's own, on the main thread. @default true */
  checkpointThread?: boolean;
  /** The checkpoint thread's polling, threshold and longest wait (checkpointer.ts's defaults). */
  checkpoint?: Omit<CheckpointerOptions, 'log'>;
}

/** The store, and its checkpoint thread (null when checkpoints are SQLite's own). */
export interface SqliteStore extends Store {
  readonly checkpointer: Checkpointer | null;
}

export function openSqliteStore(dataDir: string, log?: Pick<Logger, 'info' | 'warn'>, options: SqliteStoreOptions = {}): SqliteStore {
  const db = openDatabase(dataDir, log);
  const checkpointer =
    options.checkpointThread === false
      ? null
      : startCheckpointer(db, { ...options.checkpoint, ...(log ? { log } : {}) });
  return Object.assign(storeOnDatabase(db, dataDir, checkpointer), { checkpointer });
}

/** A store over a database already open and migrated (tests use ':memory:'); `dataDir` keeps the admin token. */
export function storeOnDatabase(db: Database.Database, dataDir: string, checkpointer: Checkpointer | null = null): Store {
  return composeStore(createSqliteExecutor(db), {
    kind: 'sqlite',
    location: db.name,
    adminToken: { ensure: async () => ensureAdminTokenFile(dataDir) },
    close: async () => {
      // The worker's connection closes first, so the main one is the last and SQLite folds the WAL in.
      await checkpointer?.stop();
      closeDatabase(db);
    },
  });
}
