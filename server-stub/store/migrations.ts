/**
 * Schema of the controller core's tables, versioned through SQLite's user_version.
 * Other modules (seeds) create their own tables with CREATE TABLE IF NOT EXISTS.
 */
import type Database from 'better-sqlite3';

const MIGRATIONS: readonly string[] = [
  // 1: agents, operations, output, audit
  `
  CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    datacenter TEXT,
    version TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]',
    connected_at TEXT,
    last_seen_at TEXT,
    facts TEXT
  );
  CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    op TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'canceled')),
    created_at TEXT NOT NULL,
    ended_at TEXT,
    result TEXT,
    error TEXT,
    exit_code INTEGER,
    actor TEXT NOT NULL,
    output_bytes INTEGER NOT NULL DEFAULT 0,
    output_stored INTEGER NOT NULL DEFAULT 0,
    output_rows INTEGER NOT NULL DEFAULT 0,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    output_tail TEXT NOT NULL DEFAULT ''
  );
  CREATE INDEX IF NOT EXISTS operations_by_agent ON operations (agent_id);
  CREATE INDEX IF NOT EXISTS operations_by_state ON operations (state);
  CREATE TABLE IF NOT EXISTS operation_output (
    operation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'marker')),
    data TEXT NOT NULL,
    PRIMARY KEY (operation_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    agent_id TEXT,
    action TEXT NOT NULL,
    params TEXT,
    outcome TEXT NOT NULL,
    message TEXT
  );
  `,
  // 2: agent identities (enrollment credentials, revocation); only a credential's SHA-256 is kept
  `
  CREATE TABLE IF NOT EXISTS agent_identities (
    agent_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('enrolled', 'revoked', 'readmitted')),
    method TEXT NOT NULL CHECK (method IN ('credential', 'token', 'certificate')),
    credential_hash TEXT UNIQUE,
    enrolled_at TEXT,
    revoked_at TEXT,
    readmitted_at TEXT,
    updated_at TEXT NOT NULL
  );
  `,
  // 3: a seed's agent-side steps are operations linked to it (null for operations not run by a seed)
  `
  ALTER TABLE operations ADD COLUMN seed_id TEXT;
  CREATE INDEX IF NOT EXISTS operations_by_seed ON operations (seed_id);
  `,
];

export function applyMigrations(db: Database.Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let version = current; version < MIGRATIONS.length; version++) {
    const sql = MIGRATIONS[version]!;
    db.transaction(() => {
      db.exec(sql);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
  return MIGRATIONS.length;
}
