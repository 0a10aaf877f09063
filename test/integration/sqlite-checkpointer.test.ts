/**
 * WAL checkpoints on a worker thread (server-stub/store/checkpointer.ts), on a real SQLite file:
 * the main connection stops checkpointing once the worker runs, what the controller wrote reaches
 * the database file through the worker while the store stays open, a worker that dies hands the
 * checkpoints back to the main connection, and closing the store folds the WAL in.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../../server-stub/api/metrics.js';
import { createEventBus } from '../../server-stub/events/bus.js';
import { createHubCounters } from '../../server-stub/hub/counters.js';
import { DEFAULT_AUTOCHECKPOINT_PAGES, startCheckpointer, type Checkpointer, type CheckpointerOptions } from '../../server-stub/store/checkpointer.js';
import { closeDatabase, openDatabase } from '../../server-stub/store/db.js';
import { openSqliteStore, type SqliteStore } from '../../server-stub/store/sqlite.js';
import { waitFor } from '../helpers/wait.js';

const dirs: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-ckpt-'));
  dirs.push(dir);
  return dir;
}

function warnings(): { log: Pick<Logger, 'warn'>; lines: string[] } {
  const lines: string[] = [];
  const warn = ((obj: object, msg?: string) => {
    lines.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  }) as unknown as Logger['warn'];
  return { lines, log: { warn } };
}

/**
 * Rows in the database file alone, without its WAL: what a checkpoint has copied in (0 before the table itself is).
 * Call it when no checkpoint is running: a copy taken while one writes pages can be torn (see rowsSeenInDatabaseFile).
 */
function rowsInDatabaseFile(dataDir: string): number {
  const copy = join(tempDir(), 'copy.db');
  copyFileSync(join(dataDir, 'seedwire.db'), copy);
  const db = new Database(copy, { readonly: true });
  try {
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'").get()) return 0;
    return (db.prepare('SELECT count(*) AS n FROM audit').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/**
 * The same, polled while the checkpoint thread may be writing the file: a copy taken in the middle of a checkpoint
 * can hold a new header before the pages it counts (SQLite then calls it malformed). That copy is no answer yet
 * (null); the next poll copies again. Any other error is thrown.
 */
function rowsSeenInDatabaseFile(dataDir: string): number | null {
  try {
    return rowsInDatabaseFile(dataDir);
  } catch (err) {
    const code = String((err as { code?: unknown }).code);
    if (/^SQLITE_(CORRUPT|NOTADB|IOERR_SHORT_READ)/.test(code)) return null;
    throw err;
  }
}

/** A store in a fresh data dir with its checkpoint thread running. */
async function storeWithThread(checkpoint: CheckpointerOptions): Promise<{ dir: string; store: SqliteStore; checkpointer: Checkpointer }> {
  const dir = tempDir();
  const store = openSqliteStore(dir, undefined, { checkpoint });
  cleanups.push(() => store.close());
  const checkpointer = store.checkpointer;
  if (!checkpointer) throw new Error('expected a checkpoint thread');
  await waitFor(() => checkpointer.active, { what: 'the checkpoint thread to run' });
  return { dir, store, checkpointer };
}

const ROW = { at: '2026-12-02T00:00:00.000Z', actor: 'test', agentId: 'db-1', action: 'op:hostname', params: { pad: 'x'.repeat(2000) }, outcome: 'ok', message: null };

describe('WAL checkpoints on a worker thread', () => {
  it('turns the main connection’s checkpoints off while the worker runs, and back on when it dies', async () => {
    const dir = tempDir();
    const db = openDatabase(dir);
    cleanups.push(() => closeDatabase(db));
    const { log, lines } = warnings();
    const checkpointer = startCheckpointer(db, { intervalMs: 20, log });
    cleanups.push(() => checkpointer.stop());
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(DEFAULT_AUTOCHECKPOINT_PAGES);
    await waitFor(() => checkpointer.active, { what: 'the checkpoint thread to run' });
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    expect(await checkpointer.checkpointNow()).toMatchObject({ busy: 0 });
    expect(checkpointer.runs).toBeGreaterThan(0);

    await checkpointer.worker.terminate();
    await waitFor(() => !checkpointer.active, { what: 'the fallback to the main connection' });
    expect(await checkpointer.checkpointNow()).toBeNull();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(DEFAULT_AUTOCHECKPOINT_PAGES);
    expect(lines.join('\n')).toMatch(/the WAL checkpoint thread stopped; the main connection checkpoints again/);
  });

  it('leaves checkpoints to the main connection, with a warning, when the thread cannot open the database', async () => {
    const dir = tempDir();
    const db = openDatabase(dir);
    cleanups.push(() => closeDatabase(db));
    // The main connection keeps its open file; the thread's open by name finds nothing.
    rmSync(join(dir, 'seedwire.db'));
    const { log, lines } = warnings();
    const checkpointer = startCheckpointer(db, { intervalMs: 20, log });
    cleanups.push(() => checkpointer.stop());
    await waitFor(() => lines.length > 0, { what: 'the warning' });
    expect(lines.join('\n')).toMatch(/the WAL checkpoint thread did not start; the main connection checkpoints/);
    expect(checkpointer.active).toBe(false);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(DEFAULT_AUTOCHECKPOINT_PAGES);
    expect(await checkpointer.checkpointNow()).toBeNull();
    // What /metrics says about it: the thread is down.
    const store = openSqliteStore(tempDir(), undefined, { checkpointThread: false });
    cleanups.push(() => store.close());
    const metrics = createMetricsRegistry({
      store: { operations: store.operations, seeds: store.seeds },
      counters: createHubCounters(),
      connectedAgents: () => 0,
      pendingHandshakes: () => 0,
      bus: createEventBus(),
      viewers: { count: () => 0, drops: () => ({ gaps: 0, events: 0 }) },
      checkpointer,
    });
    cleanups.push(() => metrics.dispose());
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^seedwire_sqlite_checkpoint_thread_up 0$/m);
    expect(text).toMatch(/^seedwire_sqlite_checkpoints_total 0$/m);
  });

  it('copies what the store wrote into the database file while it stays open, and folds the WAL in at close', async () => {
    const { dir, store, checkpointer } = await storeWithThread({ intervalMs: 20 });
    // More than SQLite's 1,000-page default: the main connection would have checkpointed by itself.
    for (let i = 0; i < 1500; i += 1) await store.audit.insert({ ...ROW, message: `row ${i}` });
    expect(statSync(join(dir, 'seedwire.db-wal')).size).toBeGreaterThan(DEFAULT_AUTOCHECKPOINT_PAGES * 4096);
    // A checkpoint after the writes leaves nothing behind in the WAL.
    const result = await checkpointer.checkpointNow();
    if (!result) throw new Error('expected a checkpoint');
    expect(result.log).toBeGreaterThan(0);
    expect(result.checkpointed).toBe(result.log);
    expect(rowsInDatabaseFile(dir)).toBe(1500);

    await store.close();
    expect(existsSync(join(dir, 'seedwire.db-wal'))).toBe(false);
    expect(rowsInDatabaseFile(dir)).toBe(1500);
    expect(checkpointer.active).toBe(false);
  });

  it('checkpoints at SQLite’s own threshold of waiting frames, not before', async () => {
    const { dir, store, checkpointer } = await storeWithThread({ intervalMs: 10, maxAgeMs: 600_000 });
    for (let i = 0; i < 20; i += 1) await store.audit.insert({ ...ROW, message: `row ${i}` });
    // Twenty polls with a few frames waiting: none ran (each would sync the disk).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(checkpointer.runs).toBe(0);
    expect(rowsInDatabaseFile(dir)).toBe(0);
    for (let i = 20; i < 1500; i += 1) await store.audit.insert({ ...ROW, message: `row ${i}` });
    await waitFor(() => checkpointer.runs > 0, { what: 'a checkpoint once 1,000 frames wait' });
    expect(checkpointer.last?.log).toBeGreaterThanOrEqual(DEFAULT_AUTOCHECKPOINT_PAGES);
  });

  it('checkpoints a frame that waited maxAgeMs, and nothing when nothing waits', async () => {
    const { dir, store, checkpointer } = await storeWithThread({ intervalMs: 10, maxAgeMs: 100 });
    await store.audit.insert({ ...ROW, message: 'one row' });
    // The file can show the row before the worker's message about that checkpoint arrives.
    await waitFor(() => rowsSeenInDatabaseFile(dir) === 1 && checkpointer.runs > 0, { what: 'the row in the database file, and its checkpoint reported' });
    const after = checkpointer.runs;
    expect(after).toBeGreaterThan(0);
    // Twenty polls, two ages, no commit: no checkpoint ran.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(checkpointer.runs).toBe(after);
  });

  it('leaves checkpoints to SQLite when asked to', async () => {
    const dir = tempDir();
    const store = openSqliteStore(dir, undefined, { checkpointThread: false });
    cleanups.push(() => store.close());
    expect(store.checkpointer).toBeNull();
    for (let i = 0; i < 1500; i += 1) await store.audit.insert({ ...ROW, message: `row ${i}` });
    // SQLite's own checkpoint at 1,000 pages copied the first rows in.
    expect(rowsInDatabaseFile(dir)).toBeGreaterThan(0);
  });
});
