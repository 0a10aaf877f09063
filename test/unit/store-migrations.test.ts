/**
 * The controller's schema migrations on real SQLite files: a fresh database, the database release
 * 0.1.0 wrote (test/fixtures), an older seeds table, and databases the controller must refuse.
 * test/integration/store-upgrade.test.ts opens the same fixture with the real controller process.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SeedwireError } from '../../shared/errors.js';
import { closeDatabase, openDatabase } from '../../server-stub/store/db.js';
import { createSqliteExecutor } from '../../server-stub/store/sql.js';
import { applyMigrations, MIGRATIONS, SCHEMA_VERSION } from '../../server-stub/store/migrations.js';
import { createOperationStore } from '../../server-stub/store/operations.js';
import { describeSchema, FIXTURE_0_1_0, rowsOf } from '../helpers/sqlite-schema.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-migrate-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The schema a database gets when it starts empty with this build. */
function freshSchema(): ReturnType<typeof describeSchema> {
  const db = openDatabase(tempDir());
  try {
    return describeSchema(db);
  } finally {
    closeDatabase(db);
  }
}

/** A database as release 0.1.0 left it before its seed tables existed: migrations 1 and 2 only. */
function databaseAtVersion2(): { dir: string; db: Database.Database } {
  const dir = tempDir();
  const db = new Database(join(dir, 'seedwire.db'));
  applyMigrations(db, MIGRATIONS.slice(0, 2));
  return { dir, db };
}

function openError(dir: string): SeedwireError {
  try {
    closeDatabase(openDatabase(dir));
  } catch (error) {
    expect(error).toBeInstanceOf(SeedwireError);
    return error as SeedwireError;
  }
  throw new Error('openDatabase accepted the database');
}

const FIXTURE_TABLES: Record<string, string> = {
  agents: 'id',
  agent_identities: 'agent_id',
  operations: 'rowid',
  operation_output: 'operation_id, seq',
  audit: 'id',
  seeds: 'rowid',
  seed_stages: 'seed_id, ord',
  seed_throughput: 'seed_id',
};

describe('store migrations', () => {
  it('a fresh database reaches the latest version, and opening it again changes nothing', async () => {
    const dir = tempDir();
    const db = openDatabase(dir);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(SCHEMA_VERSION).toBe(MIGRATIONS.length);
    await createOperationStore(createSqliteExecutor(db)).insert({ id: 'op-1', agentId: 'a1', op: 'hostname', params: {}, createdAt: '2026-01-01T00:00:00.000Z', actor: 'admin', seedId: 'seed-1' });
    const schema = describeSchema(db);
    const rows = rowsOf(db, 'operations');
    closeDatabase(db);

    const again = openDatabase(dir);
    expect(describeSchema(again)).toEqual(schema);
    expect(rowsOf(again, 'operations')).toEqual(rows);
    const changesBefore = again.prepare('SELECT total_changes() AS n').get() as { n: number };
    expect(applyMigrations(again)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
    expect(again.prepare('SELECT total_changes() AS n').get()).toEqual(changesBefore);
    closeDatabase(again);
  });

  it("release 0.1.0's database upgrades to the schema a fresh one has, keeping every row", () => {
    const old = new Database(FIXTURE_0_1_0, { readonly: true, fileMustExist: true });
    const before = Object.fromEntries(Object.entries(FIXTURE_TABLES).map(([table, order]) => [table, rowsOf(old, table, order)]));
    expect(old.pragma('user_version', { simple: true })).toBe(2);
    old.close();
    // The fixture is worth something only if it holds what the test claims to carry over.
    expect(before['seeds']!.map((s) => s['state'])).toEqual(['succeeded', 'failed', 'aborted', 'running']);
    for (const table of Object.keys(FIXTURE_TABLES)) expect(before[table]!.length, table).toBeGreaterThan(0);

    const dir = tempDir();
    copyFileSync(FIXTURE_0_1_0, join(dir, 'seedwire.db'));
    const db = openDatabase(dir);
    expect(describeSchema(db)).toEqual(freshSchema());
    for (const [table, order] of Object.entries(FIXTURE_TABLES)) {
      // Columns later migrations added, with their defaults.
      const added: Record<string, Record<string, unknown>> = { operations: { seed_id: null, output_seq: -1 }, seeds: { lanes: 1, owner: null, owner_url: null, lease_expires_at: null } };
      const expected = before[table]!.map((row) => ({ ...row, ...added[table] }));
      expect(rowsOf(db, table, order), table).toEqual(expected);
    }
    closeDatabase(db);
  });

  it('adds the columns an older seeds table lacks (max_bytes_per_sec came after the table)', () => {
    const { dir, db } = databaseAtVersion2();
    db.exec(`
      CREATE TABLE seeds (id TEXT PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, method TEXT NOT NULL,
        compression TEXT NOT NULL, effective_compression TEXT NOT NULL, start_target INTEGER NOT NULL, state TEXT NOT NULL,
        stage TEXT, bytes_total INTEGER, bytes_done INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL, ended_at TEXT,
        error TEXT, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, snapshot_name TEXT,
        source_stopped INTEGER NOT NULL DEFAULT 0, transfer TEXT, abort_requested INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX seeds_state ON seeds(state);
      INSERT INTO seeds (id, source, target, method, compression, effective_compression, start_target, state, created_at)
        VALUES ('seed-old', 'a', 'b', 'cold', 'auto', 'zstd', 1, 'succeeded', '2025-01-01T00:00:00.000Z');
    `);
    db.close();

    const upgraded = openDatabase(dir);
    expect(describeSchema(upgraded)).toEqual(freshSchema());
    expect(upgraded.prepare(`SELECT id, state, max_bytes_per_sec FROM seeds`).all()).toEqual([{ id: 'seed-old', state: 'succeeded', max_bytes_per_sec: null }]);
    closeDatabase(upgraded);
  });

  it('refuses a seeds table that lacks a column it cannot add, and leaves the database as it was', () => {
    const { dir, db } = databaseAtVersion2();
    db.exec(`CREATE TABLE seeds (id TEXT PRIMARY KEY, state TEXT NOT NULL)`);
    db.close();

    const error = openError(dir);
    expect(error.code).toBe('SEEDWIRE_CONFIG');
    expect(error.message).toMatch(/seedwire\.db: table seeds lacks column source, which cannot be added to existing rows/);
    const raw = new Database(join(dir, 'seedwire.db'), { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(2);
    expect(raw.prepare(`SELECT name FROM sqlite_master WHERE name IN ('seed_stages', 'seed_throughput')`).all()).toEqual([]);
    raw.close();
  });

  it('refuses a database a newer release wrote', () => {
    const dir = tempDir();
    const db = openDatabase(dir);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    closeDatabase(db);

    const error = openError(dir);
    expect(error.code).toBe('SEEDWIRE_CONFIG');
    expect(error.message).toContain(`schema version ${SCHEMA_VERSION + 1} was written by a newer seedwire controller (this one knows up to ${SCHEMA_VERSION})`);
  });
});

describe('operation store: the seed an operation belongs to', () => {
  it("stores seedId and lists a seed's steps in the order they ran (alone or with the agent), others newest first, through the seed index", async () => {
    const db = openDatabase(tempDir());
    const operations = createOperationStore(createSqliteExecutor(db));
    const insert = async (id: string, agentId: string, seedId?: string): Promise<void> => {
      await operations.insert({ id, agentId, op: 'hostname', params: {}, createdAt: '2026-01-01T00:00:00.000Z', actor: seedId ? `seed:${seedId}` : 'admin', ...(seedId ? { seedId } : {}) });
    };
    await insert('o1', 'src', 'seed-1');
    await insert('o2', 'dst', 'seed-1');
    await insert('o3', 'src');
    await insert('o4', 'src', 'seed-2');
    await insert('o5', 'dst', 'seed-1');

    expect((await operations.get('o1'))?.seedId).toBe('seed-1');
    expect((await operations.get('o3'))?.seedId).toBeNull();
    const ids = async (filter: Parameters<typeof operations.list>[0]): Promise<string[]> => (await operations.list(filter)).map((o) => o.id);
    expect(await ids({ seedId: 'seed-1', limit: 10 })).toEqual(['o1', 'o2', 'o5']);
    expect(await ids({ seedId: 'seed-1', limit: 2 })).toEqual(['o1', 'o2']);
    expect(await ids({ seedId: 'seed-1', agentId: 'dst', limit: 10 })).toEqual(['o2', 'o5']);
    expect(await ids({ agentId: 'src', limit: 10 })).toEqual(['o4', 'o3', 'o1']);
    expect(await ids({ limit: 10 })).toEqual(['o5', 'o4', 'o3', 'o2', 'o1']);
    expect(await ids({ seedId: 'seed-none', limit: 10 })).toEqual([]);

    const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT * FROM operations WHERE seed_id = ? ORDER BY rowid ASC LIMIT 10`).all('seed-1') as Array<{ detail: string }>;
    expect(plan.map((step) => step.detail).join('\n')).toContain('operations_by_seed');
    closeDatabase(db);
  });
});
