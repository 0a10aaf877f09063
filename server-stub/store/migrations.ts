/**
 * Every table the controller stores, as one ordered list of migrations versioned through SQLite's
 * `user_version`: migration N brings a database from version N-1 to N inside one transaction.
 * No other module creates or alters a table. A released migration is never edited: a change of
 * schema is a new migration at the end (docs/architecture.md, "The store", says how).
 */
import Database from 'better-sqlite3';
import { SeedwireError } from '../../shared/errors.js';

export interface Migration {
  /** What it brings, for the log and the docs. */
  readonly name: string;
  /** Plain SQL, or a function for a step that must look at the database first. */
  readonly up: string | ((db: Database.Database) => void);
}

/**
 * Until version 3 the seed modules created their own tables with CREATE TABLE IF NOT EXISTS, so
 * a database of those releases may hold them, with the columns of the build that created them.
 */
const SEED_TABLES = `
CREATE TABLE IF NOT EXISTS seeds (
  id TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  target TEXT NOT NULL,
  method TEXT NOT NULL,
  compression TEXT NOT NULL,
  effective_compression TEXT NOT NULL,
  start_target INTEGER NOT NULL,
  max_bytes_per_sec INTEGER,
  state TEXT NOT NULL,
  stage TEXT,
  bytes_total INTEGER,
  bytes_done INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  ended_at TEXT,
  error TEXT,
  result TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  snapshot_name TEXT,
  source_stopped INTEGER NOT NULL DEFAULT 0,
  transfer TEXT,
  abort_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS seeds_state ON seeds(state);
CREATE TABLE IF NOT EXISTS seed_stages (
  seed_id TEXT NOT NULL REFERENCES seeds(id),
  name TEXT NOT NULL,
  ord INTEGER NOT NULL,
  state TEXT NOT NULL,
  started_at TEXT,
  ended_at TEXT,
  message TEXT,
  PRIMARY KEY (seed_id, name)
);
CREATE TABLE IF NOT EXISTS seed_throughput (
  seed_id TEXT PRIMARY KEY,
  series TEXT NOT NULL
);
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    name: 'agents, operations, output, audit',
    up: `
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
  },
  {
    name: "agent identities (enrollment credentials, revocation; only a credential's SHA-256 is kept)",
    up: `
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
  },
  {
    // The only migration that may find its tables already there (see SEED_TABLES); every later
    // one is plain.
    name: 'seeds, seed stages and throughput series, adopted from the seed modules',
    up: (db) => {
      db.exec(SEED_TABLES);
      addMissingColumns(db, SEED_TABLES);
    },
  },
  {
    name: 'operations.seed_id: the seed an operation was a step of',
    up: `
  ALTER TABLE operations ADD COLUMN seed_id TEXT;
  CREATE INDEX operations_by_seed ON operations (seed_id);
  `,
  },
  {
    name: 'seeds.lanes: the transfer lanes a seed uses',
    up: `ALTER TABLE seeds ADD COLUMN lanes INTEGER NOT NULL DEFAULT 1;`,
  },
  {
    name: 'seed leases: owner, owner_url, lease_expires_at (which controller drives a seed; docs/scale-out.md)',
    up: `
  ALTER TABLE seeds ADD COLUMN owner TEXT;
  ALTER TABLE seeds ADD COLUMN owner_url TEXT;
  ALTER TABLE seeds ADD COLUMN lease_expires_at INTEGER;
  `,
  },
  {
    // -1: no frame stored yet (or stored before this column: then output_bytes says there is output).
    name: "operations.output_seq: the agent's last output frame stored (a frame sent again after a reconnect is stored once)",
    up: `ALTER TABLE operations ADD COLUMN output_seq INTEGER NOT NULL DEFAULT -1;`,
  },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

interface ColumnInfo {
  name: string;
  type: string;
  notnull: 0 | 1;
  dflt_value: string | null;
  pk: number;
}

function columnsOf(db: Database.Database, table: string): ColumnInfo[] {
  return db.prepare(`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)`).all(table) as ColumnInfo[];
}

/**
 * Brings tables that an older build created to the columns `createSql` declares: a column it
 * lacks is added when SQLite can add it (nullable or with a default); otherwise the database is
 * refused, naming the table and column, rather than failing later on a query.
 */
function addMissingColumns(db: Database.Database, createSql: string): void {
  const fresh = new Database(':memory:');
  try {
    fresh.exec(createSql);
    const tables = (fresh.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as Array<{ name: string }>).map((t) => t.name);
    for (const table of tables) {
      const present = new Set(columnsOf(db, table).map((c) => c.name));
      for (const column of columnsOf(fresh, table)) {
        if (present.has(column.name)) continue;
        if (column.pk > 0 || (column.notnull === 1 && column.dflt_value === null)) {
          throw new SeedwireError('SEEDWIRE_CONFIG', `${db.name}: table ${table} lacks column ${column.name}, which cannot be added to existing rows; this database was not written by a seedwire controller`);
        }
        const definition = [column.name, column.type, column.notnull === 1 ? 'NOT NULL' : '', column.dflt_value === null ? '' : `DEFAULT ${column.dflt_value}`].filter((part) => part !== '').join(' ');
        db.exec(`ALTER TABLE ${table} ADD COLUMN ${definition}`);
      }
    }
  } finally {
    fresh.close();
  }
}

/**
 * Runs the migrations the database has not had yet, each in its own transaction, and returns the
 * versions before and after. A database written by a newer release is refused: this build would
 * not know what its later migrations changed.
 */
export function applyMigrations(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new SeedwireError(
      'SEEDWIRE_CONFIG',
      `${db.name}: schema version ${current} was written by a newer seedwire controller (this one knows up to ${migrations.length}); run that release, or this one on a backup of its data dir from before the upgrade`,
    );
  }
  for (let version = current; version < migrations.length; version++) {
    const { up } = migrations[version]!;
    db.transaction(() => {
      if (typeof up === 'string') db.exec(up);
      else up(db);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
  return { from: current, to: migrations.length };
}
