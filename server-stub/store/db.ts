/** Opens the controller's SQLite database (DATA_DIR/seedwire.db) in WAL mode and migrates it. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { applyMigrations, MIGRATIONS } from './migrations.js';

export function openDatabase(dataDir: string, log?: Pick<Logger, 'info'>): Database.Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = new Database(join(dataDir, 'seedwire.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  try {
    const { from, to } = applyMigrations(db);
    if (from < to) log?.info({ from, to, migrations: MIGRATIONS.slice(from, to).map((m) => m.name) }, 'database schema migrated');
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

/** Idempotent close. */
export function closeDatabase(db: Database.Database): void {
  if (db.open) db.close();
}
