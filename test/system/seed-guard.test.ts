/**
 * Seeds that must not destroy the target, with real MariaDB servers, a real controller and real
 * agent processes, driven through the HTTP API: a target started while the source stops, a status
 * command that hangs, one that always exits 1 while the target runs, a NO_SPACE refusal at the
 * target's prepare, and delete-mysql-datadir on a running server. In each the target server keeps
 * every row and the error names why.
 *
 * What happens "meanwhile" is made deterministic by the source's stopCommand, which (behind flag
 * files) starts the target's server or fills the target's file system before stopping the source.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { unmountAllUnder } from '../helpers/btrfs.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { missingTools } from '../helpers/requirements.js';
import { mysqlSectionOf, seedApi, type SeedJson } from '../helpers/seed-api.js';

const skip = missingTools(['mariadbd', 'mariadb-install-db', 'mariadb-admin', 'fallocate', 'mount'], { root: true });
const TOKEN = 'seed-guard-test-token';
/** The source is much bigger than the target, so a full target file system cannot hold it. */
const SOURCE_ROWS = 100_000;
const TARGET_ROWS = 1_000;

describe.skipIf(skip)('a seed never destroys a target in use', () => {
  let base: string;
  let flags: string;
  let targetFs: string;
  let source: MariaDB;
  let target: MariaDB;
  let controller: RunningController;
  let targetSums: Map<string, string>;

  const { api, op, agentsReady, seedUntilDone } = seedApi(() => controller);
  const flag = (name: string): string => join(flags, name);
  const setFlag = (name: string): void => writeFileSync(flag(name), '');
  const clearFlags = (): void => {
    for (const name of readdirSync(flags)) rmSync(join(flags, name));
  };

  /** Starts a cold seed and waits for its end; it must fail at prepare-target. */
  async function seedFailingAtPrepare(): Promise<SeedJson> {
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', method: 'cold' });
    expect(created.status).toBe(202);
    const seed = await seedUntilDone(created.body.seed.id);
    expect(seed.state).toBe('failed');
    expect(seed.stages.map((s) => [s.name, s.state]).slice(0, 4)).toEqual([
      ['precheck', 'succeeded'],
      ['prepare-source', 'succeeded'],
      ['prepare-target', 'failed'],
      ['transfer', 'pending'],
    ]);
    return seed;
  }

  /** The target server answers with every row it had, and its datadir carries no marker. */
  async function expectTargetIntact(): Promise<void> {
    expect(await target.checksumTables()).toEqual(targetSums);
    expect(await target.exec('SELECT COUNT(*) FROM seedwire_sample.t1')).toBe(String(TARGET_ROWS));
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(false);
  }

  /** The seed's cleanup started the source again: it serves again. */
  async function expectSourceRunning(): Promise<void> {
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
  }

  async function targetCleanupAudit(seedId: string): Promise<string | null> {
    const audit = (await api<Array<{ actor: string; action: string; message: string | null }>>('GET', '/api/audit?limit=100')).body;
    return audit.find((a) => a.actor === `seed:${seedId}` && a.action === 'seed.cleanup.target')?.message ?? null;
  }

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sw-sguard-'));
    flags = join(base, 'flags');
    mkdirSync(flags);
    // The target's datadir lives on a small file system of its own, so it can be filled up.
    targetFs = join(base, 'tfs');
    mkdirSync(targetFs);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512m', 'tmpfs', targetFs]);
    source = await createMariaDB({ baseDir: join(base, 'source'), serverId: 21 });
    target = await createMariaDB({ baseDir: join(base, 'target'), datadir: join(targetFs, 'data'), serverId: 22 });
    await source.start();
    await source.loadSampleData(SOURCE_ROWS);
    await target.start();
    await target.loadSampleData(TARGET_ROWS);
    targetSums = await target.checksumTables();
    expect(targetSums.size).toBe(3);
    await target.stop();

    controller = await startController({ agentToken: TOKEN });
    const sourceStop = [
      // A subshell: the target's start command ends with `exit`.
      `if [ -e '${flag('start-target')}' ]; then ( ${target.startCommand} ) || exit 1; fi`,
      `if [ -e '${flag('hang-on-stop')}' ]; then touch '${flag('hang-status')}'; fi`,
      `if [ -e '${flag('fill-target')}' ]; then avail=$(df --output=avail -B1 '${targetFs}' | tail -1); fallocate -l $((avail - 1048576)) '${join(targetFs, 'filler')}' || exit 1; fi`,
      source.stopCommand,
    ].join('; ');
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'source', config: { mysql: { ...mysqlSectionOf(source), stopCommand: sourceStop } } });
    const targetStatus = [`if [ -e '${flag('hang-status')}' ]; then exec sleep 600; fi`, `if [ -e '${flag('wrong-status')}' ]; then exit 1; fi`, target.statusCommand].join('; ');
    startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'target',
      config: { mysql: { ...mysqlSectionOf(target), statusCommand: targetStatus, commandTimeoutSeconds: 5 } },
    });
    await agentsReady(['source', 'target']);
  }, 300_000);

  afterEach(async () => {
    clearFlags();
    rmSync(join(targetFs, 'filler'), { force: true });
    await target.stop().catch(() => undefined);
  }, 120_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    await source?.destroy();
    await target?.destroy();
    if (base) await unmountAllUnder(base);
    if (base) rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it('a target started while the source stops: the seed fails at prepare naming the running server; the target keeps every row', async () => {
    setFlag('start-target');
    const seed = await seedFailingAtPrepare();
    expect(seed.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(seed.error?.message).toMatch(/^refusing to prepare the seed in .*: mysql\.statusCommand reports MySQL running \(exit 0\); mariadbd \(pid \d+\) has \S+ open/);
    await expectTargetIntact();
    await expectSourceRunning();
    expect(await targetCleanupAudit(seed.id)).toMatch(/target left as it is: prepare-target refused \(SEEDWIRE_OP_REFUSED\)/);
  }, 240_000);

  it('a target status command that hangs: refused after its timeout, the target keeps every row', async () => {
    setFlag('start-target');
    // The status hangs only from the source's stop on: the precheck got its answer ("stopped").
    setFlag('hang-on-stop');
    const seed = await seedFailingAtPrepare();
    expect(seed.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(seed.error?.message).toContain('mysql.statusCommand did not answer within 5000 ms');
    expect(seed.error?.message).toMatch(/mariadbd \(pid \d+\)/);
    rmSync(flag('hang-status'));
    await expectTargetIntact();
    await expectSourceRunning();
  }, 240_000);

  it('a status command that always exits 1 while the target runs: the guard names mariadbd and its files; every row kept', async () => {
    await target.start();
    setFlag('wrong-status');
    const seed = await seedFailingAtPrepare();
    expect(seed.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(seed.error?.message).not.toContain('statusCommand');
    expect(seed.error?.message).toMatch(/mariadbd \(pid \d+\) has \S+ open/);
    expect(seed.error?.message).toMatch(/mariadbd \(pid \d+\) holds a POSIX WRITE lock on (ibdata1|aria_log_control)/);
    await expectTargetIntact();
    await expectSourceRunning();
  }, 240_000);

  it('SEEDWIRE_NO_SPACE at the target\'s prepare (its file system filled after the precheck): nothing deleted, the server starts with every row', async () => {
    setFlag('fill-target');
    const seed = await seedFailingAtPrepare();
    expect(seed.error?.code).toBe('SEEDWIRE_NO_SPACE');
    expect(seed.error?.message).toMatch(/nothing was deleted/);
    expect(existsSync(join(target.datadir, 'ibdata1'))).toBe(true);
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(false);
    rmSync(join(targetFs, 'filler'));
    await target.start();
    await expectTargetIntact();
    await expectSourceRunning();
    expect(await targetCleanupAudit(seed.id)).toMatch(/prepare-target refused \(SEEDWIRE_NO_SPACE\)/);
  }, 240_000);

  it('delete-mysql-datadir through the API: refused on a running server with a wrong status command, done once it is really stopped', async () => {
    await target.start();
    setFlag('wrong-status');
    const refused = await op<unknown>('target', 'delete-mysql-datadir');
    expect(refused.state).toBe('failed');
    expect(refused.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(refused.error?.message).toMatch(/mariadbd \(pid \d+\)/);
    await expectTargetIntact();

    await target.stop();
    const deleted = await op<{ deleted: boolean }>('target', 'delete-mysql-datadir');
    expect(deleted.error).toBeNull();
    expect(deleted.result).toEqual({ deleted: true });
    expect(readdirSync(target.datadir)).toEqual([]);
  }, 240_000);
});
