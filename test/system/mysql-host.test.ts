/**
 * mysql-* ops and delete-mysql-datadir against a real MariaDB, controlled only through the
 * configured start/stop/status commands, called through the op handlers with a real OpContext.
 */
import { appendFile, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mysqlOps } from '../../agent/ops/mysql.js';
import { collectFacts } from '../../agent/facts.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { missingTools } from '../helpers/requirements.js';
import { callOp, createHostOpContext, makeTestAgentConfig } from '../helpers/host-op-context.js';

describe.skipIf(missingTools(['mariadbd', 'mariadb-install-db', 'mariadb-admin']))('mysql ops on a real MariaDB (service control through the configured commands)', () => {
  let db!: MariaDB;
  let baseDir: string | undefined;
  let config: AgentConfig;

  beforeAll(async () => {
    baseDir = await mkdtemp(join(tmpdir(), 'sw-my-'));
    db = await createMariaDB({ baseDir });
    config = makeTestAgentConfig({
      mysql: {
        datadir: db.datadir,
        port: db.port,
        errorLog: db.errorLog,
        startCommand: db.startCommand,
        stopCommand: db.stopCommand,
        statusCommand: db.statusCommand,
        commandTimeoutSeconds: 60,
      },
    });
  });
  afterAll(async () => {
    await db?.destroy();
    if (baseDir) await rm(baseDir, { recursive: true, force: true });
  });

  const call = async (name: string, params: Record<string, unknown> = {}) => {
    const ctx = createHostOpContext(config, name);
    return { ...(await callOp(mysqlOps, name, ctx, params)), ctx };
  };

  it('every op requires the mysql section', () => {
    expect(mysqlOps.map((o) => o.name).sort()).toEqual(
      ['delete-mysql-datadir', 'mysql-datadir-available-space', 'mysql-du', 'mysql-error-log-tail', 'mysql-port', 'mysql-start', 'mysql-status', 'mysql-stop'],
    );
    for (const op of mysqlOps) expect(op.requires).toContain('mysql');
  });

  it('mysql-start starts the server and mysql-status reports it running', async () => {
    const started = await call('mysql-start');
    expect(started.result).toEqual({ running: true });
    expect(await db.exec('SELECT 1')).toBe('1');
    expect((await call('mysql-status')).result).toEqual({ running: true });
    expect((await call('mysql-port')).result).toEqual({ port: db.port });
  });

  it('mysql-du counts the datadir bytes like du, and free space comes from statfs', async () => {
    await db.loadSampleData(5000);
    const { result } = await call('mysql-du');
    const bytes = (result as { bytes: number }).bytes;
    const { execa } = await import('execa');
    const du = Number((await execa('du', ['-s', '-B1', db.datadir])).stdout.split('\t')[0]);
    expect(bytes).toBeGreaterThan(10 * 1024 * 1024); // ibdata + logs + sample tables
    // the server writes while we measure; allow a small drift
    expect(Math.abs(bytes - du)).toBeLessThan(2 * 1024 * 1024);
    const free = (await call('mysql-datadir-available-space')).result as { bytes: number };
    expect(free.bytes).toBeGreaterThan(0);
  });

  it('mysql-error-log-tail returns the last lines of the error log', async () => {
    await appendFile(db.errorLog, 'seedwire-test line A\nseedwire-test line B\n');
    const { result } = await call('mysql-error-log-tail', { lines: 2 });
    expect(result).toEqual({ lines: ['seedwire-test line A', 'seedwire-test line B'] });
    const all = (await call('mysql-error-log-tail')).result as { lines: string[] };
    expect(all.lines.length).toBeGreaterThan(2);
    expect(all.lines.length).toBeLessThanOrEqual(40);
    expect(all.lines.some((l) => /ready for connections/.test(l))).toBe(true);
  });

  it('mysql-error-log-tail is refused, naming mysql.errorLog, when it is not set', async () => {
    const { errorLog: _omit, ...mysql } = config.mysql!;
    const ctx = createHostOpContext(makeTestAgentConfig({ mysql }));
    await expect(callOp(mysqlOps, 'mysql-error-log-tail', ctx)).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('mysql.errorLog') });
  });

  it('delete-mysql-datadir is refused while MySQL runs, and nothing is deleted', async () => {
    const before = await readdir(db.datadir);
    await expect(call('delete-mysql-datadir')).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringMatching(/MySQL running .*mariadbd \(pid \d+\) has \S+ open/) });
    expect(await readdir(db.datadir)).toEqual(before);
    expect(await db.exec(`SELECT COUNT(*) FROM seedwire_sample.t1`)).toBe('5000');
  });

  it('facts report the running server, datadir size and free space', async () => {
    const facts = await collectFacts(config);
    expect(facts).toMatchObject({ mysqlConfigured: true, mysqlRunning: true, mysqlPort: db.port, datadir: db.datadir, incompleteSeed: null, snapshotBackend: 'none', snapshots: [], mounted: null });
    expect(facts.datadirBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(facts.datadirFreeBytes).toBeGreaterThan(0);
  });

  it('mysql-stop stops the server through stopCommand and confirms it with statusCommand', async () => {
    const stopped = await call('mysql-stop');
    expect(stopped.result).toEqual({ running: false });
    expect((await call('mysql-status')).result).toEqual({ running: false });
    await expect(db.exec('SELECT 1')).rejects.toThrow();
    // a second stop is a no-op, not a failure
    expect((await call('mysql-stop')).result).toEqual({ running: false });
  });

  it('mysql-start is refused while the datadir holds the incomplete-seed marker', async () => {
    await writeFile(join(db.datadir, INCOMPLETE_MARKER), 'seed-42\n');
    await expect(call('mysql-start')).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('seed-42') });
    expect((await call('mysql-status')).result).toEqual({ running: false });
    expect((await collectFacts(config)).incompleteSeed).toBe('seed-42');
  });

  it('delete-mysql-datadir after stop empties the datadir and keeps the directory', async () => {
    const { mode } = await stat(db.datadir);
    expect((await readdir(db.datadir)).length).toBeGreaterThan(3);
    expect((await call('delete-mysql-datadir')).result).toEqual({ deleted: true });
    expect(await readdir(db.datadir)).toEqual([]);
    expect((await stat(db.datadir)).mode).toBe(mode);
    expect((await call('mysql-du')).result).toEqual({ bytes: (await stat(db.datadir)).blocks * 512 });
  });

  it('a failing start command is SEEDWIRE_COMMAND_FAILED with its stderr', async () => {
    // the datadir is empty now: mariadbd cannot start; use a command that says why
    const ctx = createHostOpContext(makeTestAgentConfig({ mysql: { ...config.mysql!, startCommand: 'echo "cannot start: no system tables" >&2; exit 3' } }));
    await expect(callOp(mysqlOps, 'mysql-start', ctx)).rejects.toMatchObject({ code: 'SEEDWIRE_COMMAND_FAILED', message: expect.stringContaining('cannot start: no system tables') });
  });

  it('a start that never makes statusCommand succeed is SEEDWIRE_TIMEOUT after mysql.commandTimeoutSeconds', async () => {
    const ctx = createHostOpContext(makeTestAgentConfig({ mysql: { ...config.mysql!, startCommand: 'true', commandTimeoutSeconds: 1 } }));
    await expect(callOp(mysqlOps, 'mysql-start', ctx)).rejects.toMatchObject({ code: 'SEEDWIRE_TIMEOUT', message: expect.stringContaining('mysql.commandTimeoutSeconds') });
  });
});
