/**
 * Seeds end to end, as a user runs them: a real controller process, two real agent processes,
 * two real MariaDB servers (the source with 1M rows), the source's datadir on real btrfs on a
 * loop device. Driven only through the HTTP API.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { createBtrfs, unmountAllUnder, type BtrfsVolume } from '../helpers/btrfs.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { missingTools } from '../helpers/requirements.js';
import { expectNoChildProcesses, mysqlSectionOf, seedApi, resumedLanes, type SeedJson } from '../helpers/seed-api.js';

const skip = missingTools(['mariadbd', 'mariadb-install-db', 'mkfs.btrfs', 'btrfs', 'losetup'], { root: true });
const TOKEN = 'seed-test-agent-token';
const ROWS_PER_TABLE = 333_334; // three tables: 1M rows

describe.skipIf(skip)('seeding a MariaDB server through the controller', () => {
  let base: string;
  let btrfs: BtrfsVolume;
  let source: MariaDB;
  let target: MariaDB;
  let controller: RunningController;
  let sourceAgent: AgentProcess;
  let targetAgent: AgentProcess;
  let tinyMount: string;
  let mountPoint: string;

  const { api, op, agentsReady: ready, seedUntilDone } = seedApi(() => controller);
  const agentsReady = (): Promise<void> => ready(['source', 'target']);

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sw-seed-'));
    btrfs = await createBtrfs({ baseDir: join(base, 'btrfs'), sizeBytes: 2 * 1024 ** 3 });
    const subvolume = await btrfs.createSubvolume('mysql');
    mountPoint = join(base, 'snapmnt');
    mkdirSync(mountPoint);
    source = await createMariaDB({ baseDir: join(base, 'source'), datadir: join(subvolume, 'data'), serverId: 1 });
    target = await createMariaDB({ baseDir: join(base, 'target'), serverId: 2 });
    await source.start();
    await source.loadSampleData(ROWS_PER_TABLE);

    controller = await startController({ agentToken: TOKEN });
    sourceAgent = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'source',
      config: {
        datacenter: 'dc1',
        mysql: mysqlSectionOf(source),
        snapshot: { backend: 'btrfs', mountPoint, btrfs: { subvolume, snapshotDir: join(btrfs.mountPoint, '.snapshots') } },
      },
    });
    targetAgent = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'target', config: { datacenter: 'dc1', mysql: { ...mysqlSectionOf(target), user: 'mysql' } } });
    await agentsReady();
  }, 300_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    await source?.destroy();
    await target?.destroy();
    // Whatever a failed test left mounted under the base (a seed's snapshot, the tmpfs) goes first,
    // or the loop device stays busy.
    if (base) await unmountAllUnder(base);
    await btrfs?.destroy();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it('refuses a target without enough space before deleting anything (409 SEEDWIRE_NO_SPACE)', async () => {
    tinyMount = join(base, 'tiny');
    mkdirSync(tinyMount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', tinyMount]);
    writeFileSync(join(tinyMount, 'precious.ibd'), 'keep me');
    const tiny = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'tiny',
      config: { mysql: { datadir: tinyMount, startCommand: 'true', stopCommand: 'true', statusCommand: 'false' } },
    });
    await vi.waitFor(async () => expect((await api<{ facts: unknown }>('GET', '/api/agents/tiny')).body.facts).toBeTruthy(), { timeout: 30_000 });
    const res = await api<{ error: { code: string; message: string } }>('POST', '/api/seeds', { source: 'source', target: 'tiny', method: 'cold' });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('SEEDWIRE_NO_SPACE');
    expect(res.body.error.message).toMatch(/needs/);
    expect(readFileSync(join(tinyMount, 'precious.ibd'), 'utf8')).toBe('keep me');
    expect(existsSync(join(tinyMount, INCOMPLETE_MARKER))).toBe(false);
    // the source was not touched either
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
    await tiny.stop();
  });

  it('host operations through the API: du, free space, error log, delete refused while running, btrfs snapshot lifecycle, facts and peers', async () => {
    const du = await op<{ bytes: number }>('source', 'mysql-du');
    expect(du.result.bytes).toBeGreaterThan(50 * 1024 * 1024);
    expect((await op<{ bytes: number }>('source', 'mysql-datadir-available-space')).result.bytes).toBeGreaterThan(0);
    expect((await op<{ port: number }>('source', 'mysql-port')).result.port).toBe(source.port);
    const tail = await op<{ lines: string[] }>('source', 'mysql-error-log-tail', { lines: 5 });
    expect(tail.result.lines.length).toBeGreaterThan(0);
    expect(tail.result.lines.length).toBeLessThanOrEqual(5);
    const del = await op<unknown>('source', 'delete-mysql-datadir');
    expect(del.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(existsSync(join(source.datadir, 'ibdata1'))).toBe(true);

    const created = await op<{ name: string }>('source', 'create-snapshot', { name: 'by-hand' });
    expect(created.state).toBe('succeeded');
    const mounted = await op<{ mountPoint: string; dataPath: string }>('source', 'mount-snapshot', { name: 'by-hand' });
    expect(mounted.result.mountPoint).toBe(mountPoint);
    expect(existsSync(join(mounted.result.dataPath, 'ibdata1'))).toBe(true);
    // facts are pushed by the agent after the change: no polling op needed
    await vi.waitFor(async () => {
      const view = (await api<{ facts: { mounted: { name: string } | null; snapshots: Array<{ name: string; mounted: boolean }> } }>('GET', '/api/agents/source')).body;
      expect(view.facts.mounted?.name).toContain('by-hand');
      expect(view.facts.snapshots).toEqual([expect.objectContaining({ mounted: true })]);
    }, { timeout: 15_000 });
    const busy = await op<unknown>('source', 'remove-snapshot', { name: 'by-hand' });
    expect(busy.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect((await op<{ mounted: boolean }>('source', 'unmount-snapshot')).result.mounted).toBe(false);
    expect((await op<{ removed: boolean }>('source', 'remove-snapshot', { name: 'by-hand' })).result.removed).toBe(true);
    expect((await op<unknown[]>('source', 'snapshots')).result).toEqual([]);

    const view = (await api<{ datacenter: string; peers: { local: Array<{ id: string } | string>; remote: unknown[] } }>('GET', '/api/agents/source')).body;
    expect(view.datacenter).toBe('dc1');
    expect(JSON.stringify(view.peers.local)).toContain('target');
  });

  it('refuses a seed while the target MySQL runs, and a seed of an agent onto itself', async () => {
    await target.start();
    const running = await api<{ error: { code: string; message: string } }>('POST', '/api/seeds', { source: 'source', target: 'target' });
    expect(running.status).toBe(409);
    expect(running.body.error.code).toBe('SEEDWIRE_PRECHECK_FAILED');
    expect(running.body.error.message).toMatch(/running on the target/);
    await target.stop();
    const self = await api<{ error: { code: string } }>('POST', '/api/seeds', { source: 'source', target: 'source' });
    expect(self.status).toBe(409);
    expect(self.body.error.code).toBe('SEEDWIRE_PRECHECK_FAILED');
  });

  it('cold seed: the target starts with every table matching, the source runs again, binlog coordinates reported', async () => {
    const expected = await source.checksumTables();
    expect(expected.size).toBe(3);
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', method: 'cold' });
    expect(created.status).toBe(202);
    const seed = await seedUntilDone(created.body.seed.id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.stages.map((s) => [s.name, s.state])).toEqual([
      ['precheck', 'succeeded'],
      ['prepare-source', 'succeeded'],
      ['prepare-target', 'succeeded'],
      ['transfer', 'succeeded'],
      ['verify', 'succeeded'],
      ['finalize-target', 'succeeded'],
      ['cleanup-source', 'succeeded'],
    ]);
    expect(seed.result?.binlog?.file).toMatch(/^mysql-bin\.\d+$/);
    expect(seed.result?.binlog?.position).toBeGreaterThan(0);
    expect(seed.bytesDone).toBe(seed.result?.bytes);
    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(true);
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
    expect(await target.checksumTables()).toEqual(expected);
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(false);
    expect(existsSync(join(target.datadir, 'auto.cnf'))).toBe(false);
    // received files belong to mysql.user (Debian's mariadb-server package creates the mysql user)
    const mysqlUid = Number(execFileSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).trim());
    expect(statSync(join(target.datadir, 'ibdata1')).uid).toBe(mysqlUid);
    expect(statSync(join(target.datadir, 'seedwire_sample')).uid).toBe(mysqlUid);
    // the relay's bytes show in the controller's metrics
    const metrics = await (await controller.api('GET', '/metrics')).text();
    expect(metrics).toMatch(/^seedwire_agents_connected 2$/m);
    const relayed = Number(/^seedwire_relay_bytes_total (\d+)/m.exec(metrics)?.[1]);
    expect(relayed).toBeGreaterThanOrEqual(seed.result!.bytes);
    const audit = (await api<Array<{ action: string; outcome: string }>>('GET', '/api/audit?limit=200')).body;
    expect(audit.some((a) => a.action === 'seed.finish' && a.outcome === 'ok')).toBe(true);
    expect(audit.some((a) => a.action === 'seed.stage.transfer' && a.outcome === 'ok')).toBe(true);
  }, 300_000);

  it('snapshot seed survives a controller SIGKILL mid-transfer: resumes, re-sends under two windows, source never stops', async () => {
    expect((await op<{ running: boolean }>('target', 'mysql-stop')).result.running).toBe(false);
    await source.exec('INSERT INTO seedwire_sample.t1 VALUES (9999999, "after-cold-seed", 1.00, NOW())');
    const expected = await source.checksumTables();

    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', maxBytesPerSec: 24 * 1024 * 1024 });
    expect(created.status).toBe(202);
    expect(created.body.seed.method).toBe('snapshot'); // the default when the source has a snapshot backend
    const id = created.body.seed.id;

    // Watch live progress until a third is across, then kill the controller outright.
    const rates: number[] = [];
    await vi.waitFor(
      async () => {
        const s = (await api<SeedJson>('GET', `/api/seeds/${id}`)).body;
        if (s.bytesPerSec) rates.push(s.bytesPerSec);
        expect(s.stage).toBe('transfer');
        expect(s.bytesDone / (s.bytesTotal ?? Infinity)).toBeGreaterThan(0.33);
      },
      { timeout: 120_000, interval: 100 },
    );
    expect(rates.length).toBeGreaterThan(0);
    controller = await controller.restart();
    await agentsReady();

    const seed = await seedUntilDone(id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.attempts).toBeGreaterThanOrEqual(2);

    // Bytes sent twice, per lane: where its first send stopped minus where its next one started.
    const resumed = resumedLanes(sourceAgent, id, seed.lanes);
    expect(resumed.length).toBeGreaterThan(0);
    for (const sends of resumed) {
      expect(sends[1]!.from).toBeGreaterThan(0);
      expect(sends[0]!.to - sends[1]!.from).toBeLessThan(2 * 16 * 1024 * 1024);
    }

    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(true);
    expect(await target.checksumTables()).toEqual(expected);
    // the snapshot seed never stopped the source, and cleaned its snapshot up
    const sourceView = (await api<{ facts: { mysqlRunning: boolean; snapshots: unknown[]; mounted: unknown } }>('GET', '/api/agents/source')).body;
    expect(sourceView.facts.mysqlRunning).toBe(true);
    expect(sourceView.facts.mounted).toBeNull();
    expect(sourceView.facts.snapshots).toEqual([]);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(mountPoint);
  }, 300_000);

  it('abort stops both sides, leaves no mount and no child process, and the target keeps its marker and refuses to start', async () => {
    expect((await op<{ running: boolean }>('target', 'mysql-stop')).result.running).toBe(false);
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', method: 'snapshot', maxBytesPerSec: 8 * 1024 * 1024 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    await vi.waitFor(async () => expect((await api<SeedJson>('GET', `/api/seeds/${id}`)).body.bytesDone).toBeGreaterThan(0), { timeout: 60_000, interval: 100 });

    const aborted = await api<{ seed: SeedJson }>('POST', `/api/seeds/${id}/abort`);
    expect(aborted.status).toBe(200);
    expect(aborted.body.seed.state).toBe('aborted');
    expect(aborted.body.seed.stages.find((s) => s.name === 'transfer')?.state).toBe('failed');

    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(mountPoint);
    const sourceFacts = (await op<unknown[]>('source', 'snapshots')).result;
    expect(sourceFacts).toEqual([]);
    // Nothing the seed started outlives it.
    for (const agent of [sourceAgent, targetAgent]) await expectNoChildProcesses(agent);
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(true);
    const start = await op<unknown>('target', 'mysql-start');
    expect(start.state).toBe('failed');
    expect(start.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(false);
    const again = await api<{ error: { code: string } }>('POST', `/api/seeds/${id}/abort`);
    expect(again.status).toBe(409);
  }, 300_000);
});
