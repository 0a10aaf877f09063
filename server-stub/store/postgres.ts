/**
 * The cluster store: PostgreSQL through a `pg` Pool. Migrations run at open under an advisory
 * lock, so controllers starting together migrate once; a database a newer release migrated is
 * refused, as SQLite's is.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';
import { composeStore } from './compose.js';
import { redactUrl } from './url.js';
import { PG_MIGRATIONS, type PgMigration } from './postgres-migrations.js';
import { isPrepared, type SqlExecutor } from './sql.js';
import type { Store } from './types.js';

/** pg_advisory_lock key of the schema migrations (any constant shared by every release). */
const MIGRATION_LOCK = 0x5eed_1ce;

/** BIGINT (int8) columns and COUNT(*) as numbers: byte counts stay far below 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

const placeholders = new Map<string, string>();
/** `?` placeholders (as the sub-stores write them) as PostgreSQL's `$1, $2, ...`. */
function toPgSql(sql: string): string {
  let text = placeholders.get(sql);
  if (text === undefined) {
    let n = 0;
    text = sql.replace(/\?/g, () => `$${++n}`);
    placeholders.set(sql, text);
  }
  return text;
}

/** PostgreSQL's TEXT cannot hold NUL; a command's output can. It is stored as U+FFFD. */
function toPgParams(params: readonly unknown[]): unknown[] {
  return params.map((value) => (typeof value === 'string' && value.includes('\u0000') ? value.replaceAll('\u0000', '\uFFFD') : value));
}

/**
 * "cached plan must not change result type": a table a prepared statement reads changed shape.
 * Its SQLSTATE (0A000, feature_not_supported) is shared with unrelated refusals, so the message says which.
 */
function isCachedPlanChanged(error: { code?: unknown; message?: unknown }): boolean {
  return error.code === '0A000' && typeof error.message === 'string' && error.message.includes('cached plan must not change result type');
}
/** SQLSTATE of "prepared statement ... does not exist": a pooler in transaction mode moved us to another server connection. */
const NO_SUCH_STATEMENT = '26000';

export function createPgExecutor(pool: pg.Pool, log?: Pick<Logger, 'info' | 'warn'>): SqlExecutor {
  // Statements marked prepared() get a name per text; a generation renames them all after a schema
  // change, so every connection prepares them again instead of failing on its cached plan.
  const names = new Map<string, number>();
  let generation = 0;
  let named = true;

  function config(sql: string, params: readonly unknown[], allowNamed: boolean): pg.QueryConfig {
    const text = toPgSql(sql);
    const values = toPgParams(params);
    if (!allowNamed || !named || !isPrepared(sql)) return { text, values };
    let index = names.get(text);
    if (index === undefined) names.set(text, (index = names.size));
    return { name: `seedwire_${generation}_${index}`, text, values };
  }

  /** Runs one statement; a named one whose plan the server no longer accepts is renamed and run once more (outside a transaction). */
  async function query(queryable: pg.Pool | pg.PoolClient, inTransaction: boolean, sql: string, params: readonly unknown[]): Promise<pg.QueryResult> {
    const statement = config(sql, params, true);
    try {
      return await queryable.query(statement);
    } catch (error) {
      const failure = error as { code?: unknown; message?: unknown };
      const planChanged = isCachedPlanChanged(failure);
      if (statement.name === undefined || (!planChanged && failure.code !== NO_SUCH_STATEMENT)) throw error;
      if (planChanged) {
        generation++;
        log?.info({ generation }, 'a table changed shape under prepared statements (a schema migration); preparing them again');
      } else if (named) {
        named = false;
        log?.warn('PostgreSQL lost a prepared statement between calls (a pooler in transaction mode without prepared-statement support?); statements are no longer prepared');
      }
      if (inTransaction) throw error; // the transaction is aborted; its caller sees the failure
      return await queryable.query(config(sql, params, false));
    }
  }

  function make(queryable: pg.Pool | pg.PoolClient, inTransaction: boolean): SqlExecutor {
    const executor: SqlExecutor = {
      dialect: 'postgres',
      async all<R>(sql: string, params: readonly unknown[] = []) {
        return (await query(queryable, inTransaction, sql, params)).rows as R[];
      },
      async get<R>(sql: string, params: readonly unknown[] = []) {
        return (await query(queryable, inTransaction, sql, params)).rows[0] as R | undefined;
      },
      async run(sql: string, params: readonly unknown[] = []) {
        return { changes: (await query(queryable, inTransaction, sql, params)).rowCount ?? 0 };
      },
      async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
        if (inTransaction) return fn(executor);
        const client = await pool.connect();
        let broken: unknown = undefined;
        try {
          await client.query('BEGIN');
          const value = await fn(make(client, true));
          await client.query('COMMIT');
          return value;
        } catch (error) {
          await client.query('ROLLBACK').catch((rollbackError: unknown) => {
            broken = rollbackError;
          });
          throw error;
        } finally {
          // A connection that could not even roll back is not given to the next caller.
          client.release(broken instanceof Error ? broken : undefined);
        }
      },
    };
    return executor;
  }
  return make(pool, false);
}

/**
 * Runs the migrations the database has not had, each in its own transaction, holding the advisory
 * lock throughout; returns the versions before and after.
 */
export async function applyPgMigrations(pool: pg.Pool, where: string, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<{ from: number; to: number }> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const current = Number((await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations')).rows[0]?.v ?? 0);
      if (current > migrations.length) {
        throw new SeedwireError(
          'SEEDWIRE_CONFIG',
          `${where}: schema version ${current} was written by a newer seedwire controller (this one knows up to ${migrations.length}); run that release, or this one on a restore of the database from before the upgrade`,
        );
      }
      for (let version = current; version < migrations.length; version++) {
        const migration = migrations[version]!;
        await client.query('BEGIN');
        try {
          await client.query(migration.up);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [version + 1, migration.name, new Date().toISOString()]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
      }
      return { from: current, to: migrations.length };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

export interface PostgresStoreOptions {
  /** @default 10 connections */
  maxConnections?: number;
  log?: Pick<Logger, 'info' | 'warn'>;
}

export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const location = redactUrl(url);
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, types: TYPES });
  // An idle connection that breaks (the server restarted) is dropped by the pool; say so, do not crash.
  pool.on('error', (error) => options.log?.warn({ err: error, store: location }, 'a PostgreSQL connection failed'));
  try {
    const { from, to } = await applyPgMigrations(pool, location);
    if (from < to) options.log?.info({ from, to, store: location, migrations: PG_MIGRATIONS.slice(from, to).map((m) => m.name) }, 'database schema migrated');
  } catch (error) {
    await pool.end().catch(() => undefined);
    if (error instanceof SeedwireError) throw error;
    throw new SeedwireError('SEEDWIRE_CONFIG', `store: cannot open ${location}: ${(error as Error).message}`, { cause: error });
  }
  const sql = createPgExecutor(pool, options.log);
  return composeStore(sql, {
    kind: 'postgres',
    location,
    adminToken: {
      async ensure() {
        const { changes } = await sql.run(`INSERT INTO controller_secrets (name, value, created_at) VALUES ('admin-token', ?, ?) ON CONFLICT (name) DO NOTHING`, [
          randomBytes(32).toString('base64url'),
          new Date().toISOString(),
        ]);
        const row = await sql.get<{ value: string }>(`SELECT value FROM controller_secrets WHERE name = 'admin-token'`);
        return { token: row!.value, generated: changes === 1, path: null };
      },
    },
    close: () => pool.end(),
  });
}
