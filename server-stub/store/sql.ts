/**
 * The one seam between the store's logic and an engine: every sub-store (agents, operations,
 * output, seeds, ...) is written once against SqlExecutor, and SQLite (sqlite.ts) or PostgreSQL
 * (postgres.ts) runs its statements. Statements use `?` placeholders in both dialects; where the
 * SQL itself differs, the sub-store asks `dialect`.
 */
import type Database from 'better-sqlite3';

export type Dialect = 'sqlite' | 'postgres';

export interface SqlExecutor {
  readonly dialect: Dialect;
  all<R>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  get<R>(sql: string, params?: readonly unknown[]): Promise<R | undefined>;
  /** `changes`: rows the statement inserted, updated or deleted. */
  run(sql: string, params?: readonly unknown[]): Promise<{ changes: number }>;
  /**
   * Runs `fn` in one transaction on `tx` (rolled back when it throws). Inside, `tx` is the only
   * executor to use; a nested call joins the outer transaction.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
}

const PREPARED = new Set<string>();

/**
 * Marks a fixed statement text (no variable-length IN list) as one PostgreSQL runs as a named
 * prepared statement: parsed and planned once per connection instead of at every call. The hot
 * statements of an operation's path are marked (a one-row operation record took 0.44 ms of
 * PostgreSQL's time unnamed, 0.17 ms prepared; docs/scale-out.md). SQLite prepares every statement.
 */
export function prepared(text: string): string {
  PREPARED.add(text);
  return text;
}

export function isPrepared(text: string): boolean {
  return PREPARED.has(text);
}

/**
 * SQLite through better-sqlite3 (synchronous, one connection). While a transaction's callback
 * awaits, other callers' statements wait for it to end instead of slipping into it (and into its
 * rollback).
 */
export function createSqliteExecutor(db: Database.Database): SqlExecutor {
  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string): Database.Statement => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  let open: Promise<void> | null = null;

  function make(inTransaction: boolean): SqlExecutor {
    const executor: SqlExecutor = {
      dialect: 'sqlite',
      async all<R>(sql: string, params: readonly unknown[] = []) {
        while (!inTransaction && open) await open;
        return prepare(sql).all(...params) as R[];
      },
      async get<R>(sql: string, params: readonly unknown[] = []) {
        while (!inTransaction && open) await open;
        return prepare(sql).get(...params) as R | undefined;
      },
      async run(sql: string, params: readonly unknown[] = []) {
        while (!inTransaction && open) await open;
        return { changes: prepare(sql).run(...params).changes };
      },
      async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
        if (inTransaction) return fn(executor);
        // Checked and taken with no await in between, so two waiters cannot both start one.
        while (open) await open;
        let release!: () => void;
        open = new Promise<void>((resolve) => {
          release = resolve;
        });
        try {
          db.exec('BEGIN IMMEDIATE');
          const value = await fn(inside);
          db.exec('COMMIT');
          return value;
        } catch (error) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw error;
        } finally {
          open = null;
          release();
        }
      },
    };
    return executor;
  }
  const inside = make(true);
  return make(false);
}
