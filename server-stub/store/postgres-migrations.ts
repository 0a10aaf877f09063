/**
 * The PostgreSQL schema (cluster mode): the same tables and columns as SQLite's (migrations.ts),
 * numbered in `schema_migrations`. Differences, all in the engine's types: insertion order is a
 * serial column (`operations.seq`, `audit.id`) where SQLite has its rowid; byte counts are BIGINT.
 * Times stay ISO-8601 TEXT and JSON stays TEXT, so both engines' rows map the same way. A released
 * migration is never edited: a change of schema is a new migration at the end, in both lists.
 */
export interface PgMigration {
  readonly name: string;
  readonly up: string;
}

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    name: 'agents, identities, operations, output, audit, seeds, stages, throughput (SQLite schema versions 1-5)',
    up: `
  CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    datacenter TEXT,
    version TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]',
    connected_at TEXT,
    last_seen_at TEXT,
    facts TEXT
  );
  CREATE TABLE agent_identities (
    agent_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('enrolled', 'revoked', 'readmitted')),
    method TEXT NOT NULL CHECK (method IN ('credential', 'token', 'certificate')),
    credential_hash TEXT UNIQUE,
    enrolled_at TEXT,
    revoked_at TEXT,
    readmitted_at TEXT,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE operations (
    seq BIGSERIAL NOT NULL UNIQUE,
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
    output_bytes BIGINT NOT NULL DEFAULT 0,
    output_stored BIGINT NOT NULL DEFAULT 0,
    output_rows INTEGER NOT NULL DEFAULT 0,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    output_tail TEXT NOT NULL DEFAULT '',
    seed_id TEXT
  );
  CREATE INDEX operations_by_agent ON operations (agent_id, seq);
  CREATE INDEX operations_by_state ON operations (state);
  CREATE INDEX operations_by_seed ON operations (seed_id, seq);
  CREATE TABLE operation_output (
    operation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'marker')),
    data TEXT NOT NULL,
    PRIMARY KEY (operation_id, seq)
  );
  CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    agent_id TEXT,
    action TEXT NOT NULL,
    params TEXT,
    outcome TEXT NOT NULL,
    message TEXT
  );
  CREATE TABLE seeds (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    method TEXT NOT NULL,
    compression TEXT NOT NULL,
    effective_compression TEXT NOT NULL,
    start_target INTEGER NOT NULL,
    max_bytes_per_sec BIGINT,
    state TEXT NOT NULL,
    stage TEXT,
    bytes_total BIGINT,
    bytes_done BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    snapshot_name TEXT,
    source_stopped INTEGER NOT NULL DEFAULT 0,
    transfer TEXT,
    abort_requested INTEGER NOT NULL DEFAULT 0,
    lanes INTEGER NOT NULL DEFAULT 1
  );
  CREATE INDEX seeds_state ON seeds (state);
  CREATE TABLE seed_stages (
    seed_id TEXT NOT NULL REFERENCES seeds (id),
    name TEXT NOT NULL,
    ord INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    message TEXT,
    PRIMARY KEY (seed_id, name)
  );
  CREATE TABLE seed_throughput (
    seed_id TEXT PRIMARY KEY,
    series TEXT NOT NULL
  );
  `,
  },
  {
    name: 'controller secrets: the generated admin token every controller of a cluster shares',
    up: `
  CREATE TABLE controller_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  `,
  },
  {
    // lease_expires_at: milliseconds since the epoch on the database's clock (never a controller's).
    name: 'seed leases: owner, owner_url, lease_expires_at (which controller drives a seed)',
    up: `
  ALTER TABLE seeds ADD COLUMN owner TEXT;
  ALTER TABLE seeds ADD COLUMN owner_url TEXT;
  ALTER TABLE seeds ADD COLUMN lease_expires_at BIGINT;
  `,
  },
  {
    // -1: no frame stored yet (or stored before this column: then output_bytes says there is output).
    name: "operations.output_seq: the agent's last output frame stored (a frame sent again after a reconnect is stored once)",
    up: `ALTER TABLE operations ADD COLUMN output_seq BIGINT NOT NULL DEFAULT -1;`,
  },
];

export const PG_SCHEMA_VERSION = PG_MIGRATIONS.length;
