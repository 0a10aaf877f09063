/**
 * A database's schema as data, for comparing a fresh database with an upgraded one: per table its
 * columns (by name, so a column an upgrade appended compares equal), indexes with their columns,
 * and foreign keys; the user_version.
 */
import type Database from 'better-sqlite3';

export const FIXTURE_0_1_0 = new URL('../fixtures/controller-0.1.0-22401f7.sqlite', import.meta.url).pathname;

export interface SchemaShape {
  userVersion: number;
  tables: Record<string, { columns: unknown[]; indexes: unknown[]; foreignKeys: unknown[] }>;
}

export function describeSchema(db: Database.Database): SchemaShape {
  const names = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as Array<{ name: string }>).map((t) => t.name);
  const tables: SchemaShape['tables'] = {};
  for (const name of names) {
    const columns = (db.prepare(`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?) ORDER BY name`).all(name) as Array<{ name: string }>);
    const indexes = (db.prepare(`SELECT name, "unique", origin, partial FROM pragma_index_list(?) ORDER BY name`).all(name) as Array<{ name: string }>).map((index) => ({
      ...index,
      columns: (db.prepare(`SELECT name FROM pragma_index_info(?) ORDER BY seqno`).all(index.name) as Array<{ name: string }>).map((c) => c.name),
    }));
    const foreignKeys = db.prepare(`SELECT "table", "from", "to", on_update, on_delete FROM pragma_foreign_key_list(?) ORDER BY "from"`).all(name);
    tables[name] = { columns, indexes, foreignKeys };
  }
  return { userVersion: db.pragma('user_version', { simple: true }) as number, tables };
}

/** Every row of a table, in rowid order (or by its key for a WITHOUT ROWID table). */
export function rowsOf(db: Database.Database, table: string, orderBy = 'rowid'): Array<Record<string, unknown>> {
  return db.prepare(`SELECT * FROM ${table} ORDER BY ${orderBy}`).all() as Array<Record<string, unknown>>;
}
