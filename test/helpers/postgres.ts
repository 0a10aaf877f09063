/**
 * A real PostgreSQL server for tests (Debian's postgresql 15): `initdb` into a temporary
 * directory, `postgres` on a free port on 127.0.0.1 with its unix socket in that directory too,
 * run as the `postgres` system user when the tests run as root (postgres refuses root). Each
 * test file gets its own database (createDatabase). stop() shuts it down (SIGINT, then SIGKILL)
 * and removes the directory; it is safe to call twice and after a failed start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { missingTools } from './requirements.js';
import { waitFor } from './wait.js';

export const POSTGRES_BIN = process.env['SEEDWIRE_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';
const USER = 'seedwire';
const PASSWORD = 'pg-test-secret';

/** null when initdb and postgres are there; else the reason (in CI: throws, see requirements.ts). */
export function missingPostgres(): string | null {
  return missingTools([join(POSTGRES_BIN, 'initdb'), join(POSTGRES_BIN, 'postgres')]);
}

export interface PostgresServer {
  port: number;
  /** The directory holding the data dir, the socket and the log. */
  baseDir: string;
  /** postgres://seedwire:PASSWORD@127.0.0.1:PORT/NAME */
  url(database: string): string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Runs one SQL statement in `database` and returns its rows. */
  query<R extends Record<string, unknown>>(database: string, sql: string, params?: unknown[]): Promise<R[]>;
  /** Restarts the server on the same port and data (a PostgreSQL outage). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** As the postgres user when we are root: setpriv execs, so the pid we hold is postgres itself. */
function asServerUser(command: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [command, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', command, ...args]];
}

export async function startPostgres(): Promise<PostgresServer> {
  const baseDir = mkdtempSync(join(tmpdir(), 'swpg-'));
  const dataDir = join(baseDir, 'data');
  const logFile = join(baseDir, 'postgres.log');
  let child: ChildProcess | null = null;
  let stopped = false;
  try {
    if (process.getuid?.() === 0) chownSync(baseDir, ...(await postgresIds()));
    const pwFile = join(baseDir, 'pw');
    writeFileSync(pwFile, `${PASSWORD}\n`);
    if (process.getuid?.() === 0) chownSync(pwFile, ...(await postgresIds()));
    const [initdb, initArgs] = asServerUser(join(POSTGRES_BIN, 'initdb'), ['-D', dataDir, '-U', USER, `--pwfile=${pwFile}`, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync']);
    await execa(initdb, initArgs, { cwd: baseDir });
    const port = await freePort();

    const start = async (): Promise<void> => {
      const [postgres, args] = asServerUser(join(POSTGRES_BIN, 'postgres'), [
        '-D', dataDir, '-p', String(port), '-k', baseDir,
        '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      ]);
      const log = createWriteStream(logFile, { flags: 'a' });
      child = spawn(postgres, args, { cwd: baseDir, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      const running = child;
      await waitFor(
        async () => {
          if (running.exitCode !== null || running.signalCode !== null) throw new Error(`postgres exited (${running.exitCode ?? running.signalCode}); see ${logFile}`);
          const client = new pg.Client({ connectionString: url('postgres') });
          client.on('error', () => undefined);
          try {
            await client.connect();
            await client.query('SELECT 1');
            return true;
          } catch {
            return false;
          } finally {
            await client.end().catch(() => undefined);
          }
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'postgres to accept connections' },
      );
    };

    const halt = async (): Promise<void> => {
      const running = child;
      child = null;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGINT'); // fast shutdown: disconnects clients
      const timer = setTimeout(() => running.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    };

    const url = (database: string): string => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
    const query = async <R extends Record<string, unknown>>(database: string, sql: string, params: unknown[] = []): Promise<R[]> => {
      const client = new pg.Client({ connectionString: url(database) });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    };

    await start();
    return {
      port,
      baseDir,
      url,
      query,
      async createDatabase(name) {
        await query('postgres', `CREATE DATABASE "${name.replaceAll('"', '')}"`);
        return url(name);
      },
      async restart() {
        await halt();
        await start();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await halt();
        rmSync(baseDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    const running = child as ChildProcess | null;
    if (running && running.exitCode === null) running.kill('SIGKILL');
    const log = existsSync(logFile) ? `; see the log (removed): ${logFile}` : '';
    rmSync(baseDir, { recursive: true, force: true });
    throw new Error(`could not start PostgreSQL: ${(error as Error).message}${log}`, { cause: error });
  }
}

async function postgresIds(): Promise<[number, number]> {
  const uid = Number((await execa('id', ['-u', 'postgres'])).stdout);
  const gid = Number((await execa('id', ['-g', 'postgres'])).stdout);
  return [uid, gid];
}
