/**
 * The datadir guard against a real MariaDB: a running server is found whatever its status command
 * says (open files, fcntl locks, pid file, socket); a status command that hangs, is killed or
 * cannot run is a refusal, never "stopped"; a really stopped server passes. And the marker is
 * never read or written through a link.
 */
import { execFileSync, spawn } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MysqlConfig } from '../../agent/config/schema.js';
import { assertDatadirUnused, GUARD_COMPLETE_EVERY, inspectDatadirUse, watchDatadir, type GuardDeps } from '../../agent/mysql/guard.js';
import { inspectMarker, readIncompleteMarker, writeIncompleteMarker } from '../../agent/mysql/marker.js';
import { runnerFor } from '../../agent/mysql/runner.js';
import { mysqlOps } from '../../agent/ops/mysql.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { callOp, createHostOpContext, makeTestAgentConfig } from '../helpers/host-op-context.js';
import { createBtrfs, unmountAllUnder, type BtrfsVolume } from '../helpers/btrfs.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { missingTools } from '../helpers/requirements.js';

const ROWS = 2_000;

describe.skipIf(missingTools(['mariadbd', 'mariadb-install-db', 'mariadb-admin']))('the datadir guard on a real MariaDB', () => {
  let base: string;
  let db: MariaDB;

  const mysqlOf = (overrides: Partial<MysqlConfig> = {}): MysqlConfig => ({
    datadir: db.datadir,
    port: db.port,
    startCommand: db.startCommand,
    stopCommand: db.stopCommand,
    statusCommand: db.statusCommand,
    commandTimeoutSeconds: 30,
    ...overrides,
  });
  const deps = (overrides: Partial<MysqlConfig> = {}): GuardDeps => ({ mysql: mysqlOf(overrides), run: runnerFor() });
  const rowCount = async (): Promise<number> => Number(await db.exec('SELECT (SELECT COUNT(*) FROM seedwire_sample.t1) + (SELECT COUNT(*) FROM seedwire_sample.t2) + (SELECT COUNT(*) FROM seedwire_sample.t3)'));

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'sw-guard-'));
    db = await createMariaDB({ baseDir: base });
    await db.start();
    await db.loadSampleData(ROWS);
  }, 120_000);

  afterAll(async () => {
    await db?.destroy();
    if (base) await rm(base, { recursive: true, force: true });
  }, 60_000);

  describe('while the server runs', () => {
    it('refuses with a correct status command, naming mariadbd, the file it has open, its lock, pid file and socket', async () => {
      const findings = await inspectDatadirUse(deps({ pidFile: db.pidFile, socket: db.socket }), { action: 'empty' });
      expect(findings).toContain('mysql.statusCommand reports MySQL running (exit 0)');
      expect(findings.some((f) => /^mariadbd \(pid \d+\) has \S+ open$/.test(f))).toBe(true);
      expect(findings.some((f) => /^mariadbd \(pid \d+\) holds a POSIX WRITE lock on (ibdata1|aria_log_control)$/.test(f))).toBe(true);
      expect(findings.some((f) => /^pid file .*mysqld\.pid names mariadbd \(pid \d+\), which is running$/.test(f))).toBe(true);
      expect(findings).toContain(`something accepts connections on ${db.socket}`);
    });

    it('a status command that always exits 1 (a unit of another name) does not let it through', async () => {
      await expect(assertDatadirUnused(deps({ statusCommand: 'exit 1' }), { action: 'empty' })).rejects.toMatchObject({
        code: 'SEEDWIRE_OP_REFUSED',
        message: expect.stringMatching(/^refusing to empty .*: .*mariadbd \(pid \d+\) (has ibdata1 open|holds a POSIX WRITE lock on ibdata1)/),
      });
    });

    it('delete-mysql-datadir with a wrong status command is refused and every row stays', async () => {
      const before = await readdir(db.datadir);
      const ctx = createHostOpContext(makeTestAgentConfig({ mysql: mysqlOf({ statusCommand: 'systemctl is-active --quiet no-such-unit-xyz' }) }));
      await expect(callOp(mysqlOps, 'delete-mysql-datadir', ctx)).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('mariadbd') });
      expect(await readdir(db.datadir)).toEqual(before);
      expect(await rowCount()).toBe(3 * ROWS);
    });

    it('a status command that hangs is a refusal after its timeout, not "stopped"', async () => {
      const findings = await inspectDatadirUse(deps({ statusCommand: 'sleep 600', commandTimeoutSeconds: 1 }), { action: 'empty' });
      expect(findings[0]).toBe('mysql.statusCommand did not answer within 1000 ms (no answer is not "stopped")');
      expect(findings.some((f) => f.startsWith('mariadbd'))).toBe(true);
    });

    it('a re-check while a step runs stops it once a server is on the datadir', async () => {
      const watch = watchDatadir(deps(), { action: 'keep receiving the seed into', intervalMs: 50 });
      try {
        await new Promise<void>((resolve) => watch.signal.addEventListener('abort', () => resolve(), { once: true }));
        expect(watch.refusal()).toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('refusing to keep receiving the seed into') });
      } finally {
        await watch.stop();
      }
    });
  });

  describe('status commands that do not answer', () => {
    it('killed, or not runnable (exit 127), is a refusal even with the server stopped', async () => {
      await db.stop();
      expect(await inspectDatadirUse(deps({ statusCommand: 'kill -KILL $$' }), { action: 'empty' })).toEqual(['mysql.statusCommand was killed by SIGKILL']);
      const [notRunnable] = await inspectDatadirUse(deps({ statusCommand: 'no-such-status-command-xyz' }), { action: 'empty' });
      expect(notRunnable).toMatch(/^mysql\.statusCommand could not run \(exited 127: .*not found/);
      expect(await inspectDatadirUse(deps({ statusCommand: 'sleep 600', commandTimeoutSeconds: 1 }), { action: 'empty' })).toHaveLength(1);
    });

    it('a canceled check is SEEDWIRE_CANCELED, not a pass', async () => {
      const abort = new AbortController();
      const check = assertDatadirUnused({ mysql: mysqlOf({ statusCommand: 'sleep 600' }), run: runnerFor(abort.signal), signal: abort.signal }, { action: 'empty' });
      abort.abort();
      await expect(check).rejects.toMatchObject({ code: 'SEEDWIRE_CANCELED' });
    });
  });

  describe('with the server really stopped', () => {
    it('passes, with a stale pid file and a configured socket nobody listens on', async () => {
      await writeFile(join(db.datadir, 'stale.pid'), '999999\n');
      await expect(assertDatadirUnused(deps({ pidFile: db.pidFile, socket: db.socket }), { action: 'empty' })).resolves.toBeUndefined();
      await rm(join(db.datadir, 'stale.pid'));
    });

    it('another process with a file open under the datadir is named', async () => {
      const holder = spawn('bash', ['-c', `exec 3<'${join(db.datadir, 'ibdata1')}'; echo ready; exec sleep 600`], { stdio: ['ignore', 'pipe', 'ignore'] });
      try {
        await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
        await expect(assertDatadirUnused(deps(), { action: 'empty' })).rejects.toMatchObject({ message: expect.stringContaining(`sleep (pid ${holder.pid}) has ibdata1 open`) });
      } finally {
        holder.kill('SIGKILL');
      }
    });

    it('a lock on a datadir file is named (flock holder)', async () => {
      const holder = spawn('flock', ['-x', join(db.datadir, 'aria_log_control'), 'bash', '-c', 'echo ready; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
      try {
        await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
        const findings = await inspectDatadirUse(deps(), { action: 'empty' });
        expect(findings.some((f) => /holds a FLOCK WRITE lock on aria_log_control$/.test(f))).toBe(true);
      } finally {
        // flock waits for its child: the whole group goes
        process.kill(-holder.pid!, 'SIGKILL');
      }
    });

    it('a watch is complete (status command, every process) on its first and every fifth re-check; an old process that opens a datadir file later is stopped by the next complete one', async () => {
      const runs = join(base, 'status-runs');
      const watch = watchDatadir(deps({ statusCommand: `echo run >> '${runs}'; exit 3` }), { action: 'keep receiving the seed into', intervalMs: 20 });
      const holder = spawn('bash', ['-c', `read -r _; exec 3<'${join(db.datadir, 'ibdata1')}'; echo ready; exec sleep 600`], { stdio: ['pipe', 'pipe', 'ignore'] });
      try {
        await vi.waitFor(() => expect(watch.checks().total).toBeGreaterThanOrEqual(2 * GUARD_COMPLETE_EVERY + 1), { timeout: 60_000, interval: 20 });
        const { total, complete } = watch.checks();
        expect(complete).toBe(Math.ceil(total / GUARD_COMPLETE_EVERY));
        const lines = (await readFile(runs, 'utf8')).split('\n').filter(Boolean).length;
        expect(lines - complete).toBeGreaterThanOrEqual(0); // one more when a check is under way
        expect(lines - complete).toBeLessThanOrEqual(1);
        expect(watch.refusal()).toBeNull();
        holder.stdin.write('go\n');
        await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
        await new Promise<void>((resolve) => watch.signal.addEventListener('abort', () => resolve(), { once: true }));
        expect(watch.refusal()?.message).toContain(`sleep (pid ${holder.pid}) has ibdata1 open`);
      } finally {
        holder.kill('SIGKILL');
        await watch.stop();
      }
    });

    it('a re-check between complete ones stops at a new process with a datadir file open', async () => {
      // A second between checks: the holder has its file open before the first re-check after the complete one.
      const watch = watchDatadir(deps({ statusCommand: 'exit 3' }), { action: 'keep receiving the seed into', intervalMs: 1_000 });
      let holder: ReturnType<typeof spawn> | undefined;
      try {
        await vi.waitFor(() => expect(watch.checks().total).toBe(1), { timeout: 60_000, interval: 10 }); // the complete one is done
        const started = spawn('bash', ['-c', `exec 3<'${join(db.datadir, 'ibdata1')}'; echo ready; exec sleep 600`], { stdio: ['ignore', 'pipe', 'ignore'] });
        holder = started;
        await new Promise<void>((resolve) => started.stdout.once('data', () => resolve()));
        await new Promise<void>((resolve) => watch.signal.addEventListener('abort', () => resolve(), { once: true }));
        expect(watch.checks().complete).toBe(1);
        expect(watch.refusal()?.message).toContain(`(pid ${holder.pid}) has ibdata1 open`);
      } finally {
        holder?.kill('SIGKILL');
        await watch.stop();
      }
    });

    it('delete-mysql-datadir empties it', async () => {
      const ctx = createHostOpContext(makeTestAgentConfig({ mysql: mysqlOf({ statusCommand: 'exit 3' }) }));
      expect((await callOp(mysqlOps, 'delete-mysql-datadir', ctx)).result).toEqual({ deleted: true });
      expect(await readdir(db.datadir)).toEqual([]);
    });
  });

  describe('the marker is never followed', () => {
    const secretLine = 'root:$6$very-secret-hash:19000:0:99999:7:::';
    let secret: string;
    let dir: string;

    beforeAll(async () => {
      dir = join(base, 'marker');
      await mkdir(dir, { recursive: true });
      secret = join(base, 'root-only-secret');
      await writeFile(secret, `${secretLine}\n`, { mode: 0o600 });
    });

    it('a symlink marker is refused on read and write; its target is neither echoed nor touched', async () => {
      await symlink(secret, join(dir, INCOMPLETE_MARKER));
      for (const attempt of [readIncompleteMarker(dir), writeIncompleteMarker(dir, 'seed-1')]) {
        const error = (await attempt.then(() => null, (e: unknown) => e)) as Error & { code: string };
        expect(error.code).toBe('SEEDWIRE_OP_REFUSED');
        expect(error.message).toContain('a symbolic link');
        expect(error.message).not.toContain('very-secret');
      }
      expect(await readFile(secret, 'utf8')).toBe(`${secretLine}\n`);
      await rm(join(dir, INCOMPLETE_MARKER));
    });

    it('a dangling symlink is not created through', async () => {
      const where = join(base, 'created-through-link');
      await symlink(where, join(dir, INCOMPLETE_MARKER));
      await expect(writeIncompleteMarker(dir, 'seed-1')).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED' });
      await expect(readFile(where)).rejects.toMatchObject({ code: 'ENOENT' });
      await rm(join(dir, INCOMPLETE_MARKER));
    });

    it('a hard link and a FIFO are refused without reading or blocking', async () => {
      await link(secret, join(dir, INCOMPLETE_MARKER));
      await expect(inspectMarker(dir)).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('hard link') });
      await expect(writeIncompleteMarker(dir, 'seed-1')).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED' });
      expect(await readFile(secret, 'utf8')).toBe(`${secretLine}\n`);
      await rm(join(dir, INCOMPLETE_MARKER));
      execFileSync('mkfifo', [join(dir, INCOMPLETE_MARKER)]);
      await expect(inspectMarker(dir)).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('FIFO') });
      await expect(writeIncompleteMarker(dir, 'seed-1')).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED' });
      await rm(join(dir, INCOMPLETE_MARKER));
    });

    it('a regular marker round-trips; content that is not a seed id is not repeated', async () => {
      await writeIncompleteMarker(dir, 'seed-1234');
      expect(await inspectMarker(dir)).toEqual({ seedId: 'seed-1234' });
      await writeFile(join(dir, INCOMPLETE_MARKER), `${secretLine}\n`);
      expect(await inspectMarker(dir)).toEqual({ seedId: null });
      expect(await readIncompleteMarker(dir)).toBe('unknown seed');
    });
  });
});

describe.skipIf(missingTools(['mkfs.btrfs', 'btrfs', 'losetup', 'flock'], { root: true }))('the datadir guard on a btrfs subvolume', () => {
  let base: string;
  let btrfs: BtrfsVolume;
  let datadir: string;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'sw-guard-btrfs-'));
    btrfs = await createBtrfs({ baseDir: join(base, 'btrfs'), sizeBytes: 256 * 1024 ** 2 });
    datadir = join(await btrfs.createSubvolume('mysql'), 'data');
    await mkdir(datadir);
    await writeFile(join(datadir, 'ibdata1'), 'pages');
  }, 120_000);

  afterAll(async () => {
    if (base) await unmountAllUnder(base);
    await btrfs?.destroy();
    if (base) await rm(base, { recursive: true, force: true });
  }, 60_000);

  it('finds a lock although stat() and /proc/locks name different devices for the file', async () => {
    const holder = spawn('flock', ['-x', join(datadir, 'ibdata1'), 'bash', '-c', 'echo ready; exec sleep 600'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    try {
      await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
      const mysql: MysqlConfig = { datadir, port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand: 'exit 3', commandTimeoutSeconds: 5 };
      const findings = await inspectDatadirUse({ mysql, run: runnerFor() }, { action: 'empty' });
      expect(findings).toContain(`flock (pid ${holder.pid}) holds a FLOCK WRITE lock on ibdata1`);
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
    }
  });
});
