/**
 * Faults during a seed, as an unlucky operator meets them: a real controller, two real agents
 * and two real MariaDB servers; the target's datadir on a small real ext4 on a loop device.
 * Mid-transfer (the seed's bandwidth is capped, and the fault waits on bytesDone through the
 * API) the source agent, the target agent or the controller is SIGKILLed and restarted, or the
 * target's disk fills up. Each seed must complete after recovery with every table matching, or
 * fail with a clear error; the target never looks valid while incomplete, and the source's
 * tables are never touched. What each case shows: docs/reliability.md, "Faults during a seed".
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { createBtrfs, unmountAllUnder, type BtrfsVolume } from '../helpers/btrfs.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { createLoopFs, type LoopFs } from '../helpers/loopfs.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { missingTools } from '../helpers/requirements.js';
import { mysqlSectionOf, seedApi, resumedLanes, sendsOf, type SeedJson } from '../helpers/seed-api.js';

const skip = missingTools(['mariadbd', 'mariadb-install-db', 'mkfs.ext4', 'mkfs.btrfs', 'btrfs', 'losetup', 'dd'], { root: true });
const TOKEN = 'seed-faults-agent-token';
/** Three tables of this many rows: a source datadir of about 160 MiB (96 MiB of it the redo log), which the 384 MiB target holds once with the precheck's margin. */
const ROWS_PER_TABLE = 100_000;
const TARGET_FS_BYTES = 384 * 1024 * 1024;
/** Slow enough that a fault lands mid-transfer, fast enough for the suite (about 10 s a seed). */
const MAX_BYTES_PER_SEC = 12 * 1024 * 1024;
const SEED_TIMEOUT_MS = 300_000;

type StageState = SeedJson['stages'][number]['state'];

function stageState(seed: SeedJson, name: string): StageState | undefined {
  return seed.stages.find((s) => s.name === name)?.state;
}

/** Command lines of live processes running `program` with an argument containing `needle` (ours only: needle is a temp path). */
async function processesOf(program: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args[0]?.endsWith(program) && args.some((a) => a.includes(needle))) found.push(`${entry}: ${args.join(' ')}`);
  }
  return found;
}

describe.skipIf(skip)('faults during a seed', () => {
  let base: string;
  let disk: LoopFs;
  /** The source's datadir lives in a btrfs subvolume, so a snapshot seed can read a snapshot of it. */
  let btrfs: BtrfsVolume;
  let snapshotMount: string;
  let source: MariaDB;
  let target: MariaDB;
  let controller: RunningController;
  let sourceAgent: AgentProcess;
  let targetAgent: AgentProcess;
  let sourceConfig: Record<string, unknown>;
  let targetConfig: Record<string, unknown>;

  const { api, op, agentsReady: ready } = seedApi(() => controller);
  const agentsReady = (): Promise<void> => ready(['source', 'target']);
  const markerPath = (): string => join(target.datadir, INCOMPLETE_MARKER);

  /** The same agent again: same id, same stateDir (its resume points and ledger), same config. */
  function restartAgent(old: AgentProcess, id: string, config: Record<string, unknown>): AgentProcess {
    return startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id, stateDir: old.stateDir, config });
  }

  async function startSeed(method: 'cold' | 'snapshot' | 'backup' = 'cold'): Promise<string> {
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', method, maxBytesPerSec: MAX_BYTES_PER_SEC });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    return created.body.seed.id;
  }

  /** Waits, through the API, until the transfer has moved `fraction` of the bytes. */
  async function waitForTransfer(id: string, fraction: number): Promise<SeedJson> {
    let seed!: SeedJson;
    await vi.waitFor(
      async () => {
        seed = (await api<SeedJson>('GET', `/api/seeds/${id}`)).body;
        expect(seed.state).toBe('running');
        expect(seed.stage).toBe('transfer');
        expect(seed.bytesDone / (seed.bytesTotal ?? Infinity)).toBeGreaterThan(fraction);
      },
      { timeout: 120_000, interval: 100 },
    );
    return seed;
  }

  /**
   * Polls the seed until it ends. On every poll the marker is looked at first and the seed read
   * after: a seed that was still short of finalize-target when read was short of it when the
   * marker was looked at, so a missing marker then is a target that looked valid while
   * incomplete. The API may be down meanwhile (a controller restart): those polls are retried.
   */
  async function seedUntilDoneWatchingTarget(id: string): Promise<{ seed: SeedJson; violations: string[] }> {
    const violations: string[] = [];
    let seed!: SeedJson;
    await vi.waitFor(
      async () => {
        const markerThere = existsSync(markerPath());
        seed = (await api<SeedJson>('GET', `/api/seeds/${id}`)).body;
        const incomplete = stageState(seed, 'prepare-target') === 'succeeded' && stageState(seed, 'finalize-target') === 'pending';
        if (incomplete && !markerThere) violations.push(`no ${INCOMPLETE_MARKER} while the seed was at ${seed.stage} (${seed.bytesDone} bytes)`);
        expect(['pending', 'running']).not.toContain(seed.state);
      },
      { timeout: SEED_TIMEOUT_MS, interval: 100 },
    );
    return { seed, violations };
  }

  /** What a user sees of an incomplete target: the marker, and mysql-start refused through the API. */
  async function expectTargetRefusesToStart(): Promise<void> {
    expect(existsSync(markerPath())).toBe(true);
    const start = await op<unknown>('target', 'mysql-start');
    expect(start.state).toBe('failed');
    expect(start.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect(start.error?.message).toMatch(/incomplete seed/);
    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(false);
  }

  /** After a seed that succeeded: the target runs with every table as the source had it, and the source runs again untouched. */
  async function expectSeededCopy(seed: SeedJson, before: Map<string, string>): Promise<void> {
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.stages.every((s) => s.state === 'succeeded')).toBe(true);
    expect(seed.bytesDone).toBe(seed.result?.bytes);
    expect(existsSync(markerPath())).toBe(false);
    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(true);
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
    expect(await target.checksumTables()).toEqual(before);
    expect(await source.checksumTables()).toEqual(before);
    for (const table of ['t1', 't2', 't3']) {
      expect(await target.exec(`SELECT COUNT(*) FROM seedwire_sample.${table}`)).toBe(String(ROWS_PER_TABLE));
    }
  }

  /** The next case needs a stopped target (the precheck refuses a running one). */
  async function stopTarget(): Promise<void> {
    if ((await op<{ running: boolean }>('target', 'mysql-status')).result.running) {
      expect((await op<{ running: boolean }>('target', 'mysql-stop')).result.running).toBe(false);
    }
  }

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sw-faults-'));
    disk = await createLoopFs({ baseDir: join(base, 'disk'), sizeBytes: TARGET_FS_BYTES });
    btrfs = await createBtrfs({ baseDir: join(base, 'btrfs'), sizeBytes: 1024 ** 3 });
    const subvolume = await btrfs.createSubvolume('mysql');
    snapshotMount = join(base, 'snapmnt');
    mkdirSync(snapshotMount);
    source = await createMariaDB({ baseDir: join(base, 'source'), datadir: join(subvolume, 'data'), serverId: 1 });
    // The target's datadir is a directory on the small file system, so a file beside it can fill it.
    target = await createMariaDB({ baseDir: join(base, 'target'), datadir: join(disk.mountPoint, 'data'), serverId: 2 });
    await source.start();
    await source.loadSampleData(ROWS_PER_TABLE);

    controller = await startController({ agentToken: TOKEN });
    sourceConfig = {
      datacenter: 'dc1',
      mysql: mysqlSectionOf(source),
      snapshot: { backend: 'btrfs', mountPoint: snapshotMount, btrfs: { subvolume, snapshotDir: join(btrfs.mountPoint, '.snapshots') } },
      backup: { tool: 'mariabackup', socket: source.socket },
    };
    targetConfig = { datacenter: 'dc1', mysql: mysqlSectionOf(target) };
    sourceAgent = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'source', config: sourceConfig });
    targetAgent = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'target', config: targetConfig });
    await agentsReady();
  }, 300_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    await source?.destroy();
    await target?.destroy();
    // A snapshot a failed test left mounted keeps the loop device busy: every mount under the base goes first.
    if (base) await unmountAllUnder(base);
    await btrfs?.destroy();
    await disk?.destroy();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it('SIGKILL of the source agent: the seed waits for it, resumes after its restart and completes; the target refuses to start meanwhile', async () => {
    const before = await source.checksumTables();
    expect(before.size).toBe(3);
    const id = await startSeed();
    await waitForTransfer(id, 0.25);

    await sourceAgent.kill();
    expect(existsSync(markerPath())).toBe(true);
    // The seed waits for the source; the half-filled target is not a database.
    await expectTargetRefusesToStart();
    const waiting = (await api<SeedJson>('GET', `/api/seeds/${id}`)).body;
    expect(waiting.state).toBe('running');
    expect(waiting.stage).toBe('transfer');

    sourceAgent = restartAgent(sourceAgent, 'source', sourceConfig);
    const { seed, violations } = await seedUntilDoneWatchingTarget(id);
    expect(violations).toEqual([]);
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    await expectSeededCopy(seed, before);
    await stopTarget();
  }, SEED_TIMEOUT_MS);

  it('SIGKILL of the source agent during a snapshot seed: the source MySQL keeps serving, the restarted agent reads the still-mounted snapshot to the end and removes it', async () => {
    const before = await source.checksumTables();
    const id = await startSeed('snapshot');
    await waitForTransfer(id, 0.25);

    await sourceAgent.kill();
    // The agent is gone, the server is not: a snapshot seed never stops the source.
    expect(await source.exec('SELECT COUNT(*) FROM seedwire_sample.t1')).toBe(String(ROWS_PER_TABLE));
    expect(readFileSync('/proc/self/mounts', 'utf8')).toContain(snapshotMount);
    await expectTargetRefusesToStart();

    sourceAgent = restartAgent(sourceAgent, 'source', sourceConfig);
    const { seed, violations } = await seedUntilDoneWatchingTarget(id);
    expect(violations).toEqual([]);
    expect(seed.method).toBe('snapshot');
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    await expectSeededCopy(seed, before);
    // The snapshot the dead agent had mounted was unmounted and removed by its successor.
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(snapshotMount);
    expect((await op<unknown[]>('source', 'snapshots')).result).toEqual([]);
    await stopTarget();
  }, SEED_TIMEOUT_MS);

  it('SIGKILL of the target agent: after its restart the transfer resumes from its committed offset and completes', async () => {
    const before = await source.checksumTables();
    const id = await startSeed();
    await waitForTransfer(id, 0.25);

    await targetAgent.kill();
    expect(existsSync(markerPath())).toBe(true);
    targetAgent = restartAgent(targetAgent, 'target', targetConfig);

    const { seed, violations } = await seedUntilDoneWatchingTarget(id);
    expect(violations).toEqual([]);
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    // The restarted target resumed each lane from what it had committed, not from 0.
    const resumed = resumedLanes(sourceAgent, id, seed.lanes);
    expect(resumed.length).toBeGreaterThan(0);
    for (const sends of resumed) expect(sends.at(-1)!.from).toBeGreaterThan(0);
    await expectSeededCopy(seed, before);
    await stopTarget();
  }, SEED_TIMEOUT_MS);

  it('SIGKILL of the controller: restarted on the same data dir, it resumes the seed, which completes and starts the source again', async () => {
    const before = await source.checksumTables();
    const id = await startSeed();
    await waitForTransfer(id, 0.25);

    await controller.kill();
    expect(existsSync(markerPath())).toBe(true);
    controller = await controller.restart();
    // The new process knows the seed from its store: still running, not lost and not failed.
    const resumed = (await api<SeedJson>('GET', `/api/seeds/${id}`)).body;
    expect(resumed.state).toBe('running');
    await agentsReady();

    const { seed, violations } = await seedUntilDoneWatchingTarget(id);
    expect(violations).toEqual([]);
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    await expectSeededCopy(seed, before);
    const audit = (await api<Array<{ action: string }>>('GET', '/api/audit?limit=200')).body;
    expect(audit.some((a) => a.action === 'seed.resume')).toBe(true);
    await stopTarget();
  }, SEED_TIMEOUT_MS);

  it('SIGKILL of either agent during a hot backup seed: the tools it ran do not outlive it, the restarted agent runs the backup again from 0 and the seed completes', async () => {
    for (const victim of ['source', 'target'] as const) {
      const before = await source.checksumTables();
      const id = await startSeed('backup');
      // bytesTotal is the datadir's size, more than the stream carries: a tenth is already mid-stream.
      await waitForTransfer(id, 0.1);
      expect(await processesOf('mariabackup', source.socket)).not.toEqual([]);

      if (victim === 'source') await sourceAgent.kill();
      else await targetAgent.kill();
      // mariabackup runs in its own process group: it must still end when the agent that read its stdout is gone.
      await vi.waitFor(async () => expect(await processesOf(victim === 'source' ? 'mariabackup' : 'mbstream', victim === 'source' ? source.socket : target.datadir)).toEqual([]), {
        timeout: 60_000,
        interval: 200,
      });
      expect(await source.exec('SELECT COUNT(*) FROM seedwire_sample.t1')).toBe(String(ROWS_PER_TABLE));
      if (victim === 'source') {
        await expectTargetRefusesToStart();
        sourceAgent = restartAgent(sourceAgent, 'source', sourceConfig);
      } else {
        expect(existsSync(markerPath())).toBe(true);
        targetAgent = restartAgent(targetAgent, 'target', targetConfig);
      }

      const { seed, violations } = await seedUntilDoneWatchingTarget(id);
      expect(violations).toEqual([]);
      expect(seed.method).toBe('backup');
      expect(seed.attempts).toBeGreaterThanOrEqual(2);
      // A pipe cannot resume: the last attempt streamed the backup from the start.
      expect(sendsOf(sourceAgent, id).at(-1)?.from).toBe(0);
      await expectSeededCopy(seed, before);
      expect(await processesOf('mariabackup', source.socket)).toEqual([]);
      expect(await processesOf('mbstream', target.datadir)).toEqual([]);
      await stopTarget();
    }
  }, SEED_TIMEOUT_MS * 2);

  it("the target's disk fills up mid-transfer: the seed fails saying so, the target keeps its marker and refuses to start, the source runs untouched; with space back a new seed completes", async () => {
    const before = await source.checksumTables();
    const id = await startSeed();
    await waitForTransfer(id, 0.25);

    const taken = await disk.fill('filler');
    expect(taken).toBeGreaterThan(0);

    const { seed, violations } = await seedUntilDoneWatchingTarget(id);
    expect(violations).toEqual([]);
    expect(seed.state).toBe('failed');
    expect(stageState(seed, 'transfer')).toBe('failed');
    expect(stageState(seed, 'finalize-target')).toBe('pending');
    expect(seed.error?.code, JSON.stringify(seed.error)).toBe('SEEDWIRE_NO_SPACE');
    expect(seed.error?.message).toMatch(/no space left|ENOSPC/i);
    expect(seed.stages.find((s) => s.name === 'transfer')?.message).toMatch(/SEEDWIRE_NO_SPACE/);

    // The target agent is still up and serving; its datadir says it is incomplete.
    await expectTargetRefusesToStart();
    expect(readdirSync(target.datadir)).toContain(INCOMPLETE_MARKER);
    // The cold seed started the source again after the failure, and its tables are as they were.
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
    expect(await source.checksumTables()).toEqual(before);

    // With the space back, the same target takes a whole seed.
    rmSync(join(disk.mountPoint, 'filler'));
    const retry = await startSeed();
    const done = await seedUntilDoneWatchingTarget(retry);
    expect(done.violations).toEqual([]);
    await expectSeededCopy(done.seed, before);
    await stopTarget();
  }, SEED_TIMEOUT_MS * 2);
});
