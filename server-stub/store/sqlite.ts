/** The embedded store: SQLite in DATA_DIR/seedwire.db, the admin token in DATA_DIR/admin-token. */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { ensureAdminTokenFile } from './admin-token.js';
import { composeStore } from './compose.js';
import { closeDatabase, openDatabase } from './db.js';
import { createSqliteExecutor } from './sql.js';
import type { Store } from './types.js';

export function openSqliteStore(dataDir: string, log?: Pick<Logger, 'info'>): Store {
  return storeOnDatabase(openDatabase(dataDir, log), dataDir);
}

/** A store over a database already open and migrated (tests use ':memory:'); `dataDir` keeps the admin token. */
export function storeOnDatabase(db: Database.Database, dataDir: string): Store {
  return composeStore(createSqliteExecutor(db), {
    kind: 'sqlite',
    location: db.name,
    adminToken: { ensure: async () => ensureAdminTokenFile(dataDir) },
    close: async () => closeDatabase(db),
  });
}
