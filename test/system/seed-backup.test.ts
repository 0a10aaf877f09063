/**
 * The hot `backup` seed method end to end: a real controller, real agents, a real running MariaDB
 * source streamed by mariabackup, extracted on the target by mbstream and prepared there. Also
 * the xbstream path guard and the stream receiver on their own (real mbstream, no server).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkExtractedTree, extractorFor, receiveStream } from '../../agent/transfer/receive-stream.js';
import { sendStream } from '../../agent/transfer/send.js';
import { normalizeStreamPath, parseBinlogInfo, parseBinlogLine, XbstreamInspector } from '../../agent/transfer/xbstream.js';
import { SeedwireError } from '../../shared/errors.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { missingTools } from '../helpers/requirements.js';
import { createStreamPair } from '../helpers/stream-pair.js';
import { expectNoChildProcesses, mysqlSectionOf, seedApi, sendsOf, type SeedJson } from '../helpers/seed-api.js';

const TOKEN = 'seed-backup-test-token';
const ROWS_PER_TABLE = 100_000;

// ---- xbstream chunks built by hand (for the guard; CRCs are not checked by it) ----------------

function chunk(type: string, path: string, payload: Buffer = Buffer.alloc(0), options: { flags?: number; sparse?: Buffer } = {}): Buffer {
  const head = Buffer.alloc(14);
  head.write('XBSTCK01', 0, 'latin1');
  head[8] = options.flags ?? 0;
  head[9] = type.charCodeAt(0);
  const pathBuf = Buffer.from(path);
  head.writeUInt32LE(pathBuf.length, 10);
  if (type === 'E') return Buffer.concat([head, pathBuf]);
  const sparse = options.sparse ?? Buffer.alloc(0);
  const count = Buffer.alloc(4);
  count.writeUInt32LE(sparse.length / 8);
  const lengths = Buffer.alloc(20);
  lengths.writeBigUInt64LE(BigInt(payload.length), 0);
  return Buffer.concat([head, pathBuf, ...(type === 'S' ? [count] : []), lengths, sparse, payload]);
}

function feedInPieces(inspector: XbstreamInspector, stream: Buffer, piece: number): void {
  for (let at = 0; at < stream.length; at += piece) inspector.push(stream.subarray(at, at + piece));
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (error) {
    return error instanceof SeedwireError ? error.code : String(error);
  }
}

describe('xbstream inspector (the path guard of backup seeds)', () => {
  it('counts files, skips payloads and sparse maps in any piece size, captures xtrabackup_binlog_info', () => {
    const stream = Buffer.concat([
      chunk('P', 'ibdata1', Buffer.alloc(5000, 1)),
      chunk('P', './db/t.ibd', Buffer.alloc(300, 2)),
      chunk('S', 'db/sparse.ibd', Buffer.alloc(64, 3), { sparse: Buffer.alloc(16) }),
      chunk('X', 'ignorable/chunk', Buffer.alloc(10), { flags: 1 }),
      chunk('E', 'db/t.ibd'),
      chunk('P', 'xtrabackup_binlog_info', Buffer.from('mysql-bin.000007\t4242\t0-1-99\n')),
      chunk('E', 'xtrabackup_binlog_info'),
      chunk('E', 'empty.frm'),
    ]);
    for (const piece of [1, 7, 100, stream.length]) {
      const inspector = new XbstreamInspector();
      feedInPieces(inspector, stream, piece);
      inspector.end();
      expect([...inspector.paths].sort()).toEqual(['db/sparse.ibd', 'db/t.ibd', 'empty.frm', 'ibdata1', 'xtrabackup_binlog_info']);
      expect(inspector.bytes).toBe(stream.length);
      expect(parseBinlogInfo(inspector.capturedText('xtrabackup_binlog_info') ?? '')).toEqual({ file: 'mysql-bin.000007', position: 4242, gtid: '0-1-99' });
    }
  });

  it('refuses paths outside the datadir or on the marker, unknown chunks, garbage and a cut stream', () => {
    const push = (stream: Buffer) => () => new XbstreamInspector().push(stream);
    expect(codeOf(push(chunk('P', '../etc/passwd', Buffer.from('x'))))).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(codeOf(push(chunk('P', 'db/../../x', Buffer.from('x'))))).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(codeOf(push(chunk('P', '/etc/cron.d/x', Buffer.from('x'))))).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(codeOf(push(chunk('E', './.seedwire-incomplete')))).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(codeOf(push(chunk('P', 'a\0b', Buffer.from('x'))))).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(codeOf(push(chunk('Q', 'db/t.ibd', Buffer.from('x'))))).toBe('SEEDWIRE_BAD_FRAME');
    expect(codeOf(push(Buffer.from('not an xbstream at all')))).toBe('SEEDWIRE_BAD_FRAME');
    const cut = new XbstreamInspector();
    const whole = chunk('P', 'ibdata1', Buffer.alloc(100));
    cut.push(whole.subarray(0, whole.length - 1));
    expect(codeOf(() => cut.end())).toBe('SEEDWIRE_VERIFY_FAILED');
    expect(normalizeStreamPath(Buffer.from('./a//b/./c'))).toBe('a/b/c');
  });

  it('parses the binlog line mariabackup prints', () => {
    expect(parseBinlogLine("[00] 2026-01-01 00:00:00 MySQL binlog position: filename 'mysql-bin.000001', position '781', GTID of the last change '0-5-3'")).toEqual({
      file: 'mysql-bin.000001',
      position: 781,
      gtid: '0-5-3',
    });
    expect(parseBinlogLine('[00] copying ./ibdata1')).toBeNull();
  });
});

describe.skipIf(missingTools(['mbstream']))('backup stream receiver with a real mbstream', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'sw-xbs-'));
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  async function transfer(stream: Buffer, root: string, options: { sendEnd?: boolean } = {}): Promise<{ sent: unknown; received: unknown }> {
    const pair = createStreamPair();
    const signal = new AbortController().signal;
    const received = receiveStream({ root, port: pair.receive, extractor: extractorFor('mariabackup', root), signal, killGraceMs: 2_000, windowInitialBytes: 64 * 1024, windowMaxBytes: 256 * 1024 });
    const sending = sendStream({
      input: Readable.from([stream.subarray(0, 1000), stream.subarray(1000)]),
      port: pair.send,
      offset: 0,
      compression: 'zstd',
      chunkBytes: 32 * 1024,
      signal,
      ...(options.sendEnd === false ? { beforeEnd: () => Promise.reject(new SeedwireError('SEEDWIRE_COMMAND_FAILED', 'the tool failed')) } : {}),
    });
    // Whichever side fails first stops the other, as the controller would.
    sending.then(
      () => undefined,
      () => pair.cut('sender failed'),
    );
    received.catch(() => pair.cut('receiver failed'));
    const [sent, got] = await Promise.allSettled([sending, received]);
    if (sent.status === 'rejected') throw sent.reason;
    if (got.status === 'rejected') throw got.reason;
    return { sent: sent.value, received: got.value };
  }

  it('extracts a stream made by mbstream -c exactly, with the same byte digest on both sides', async () => {
    const src = join(work, 'src');
    await mkdir(join(src, 'db', 'nested'), { recursive: true });
    await writeFile(join(src, 'ibdata1'), Buffer.alloc(700_000, 7));
    await writeFile(join(src, 'db', 't.ibd'), Buffer.from('rows'.repeat(50_000)));
    await writeFile(join(src, 'db', 'nested', 'x.frm'), 'frm');
    const stream = execFileSync('mbstream', ['-c', 'ibdata1', 'db/t.ibd', 'db/nested/x.frm'], { cwd: src, maxBuffer: 64 * 1024 * 1024 });
    const root = join(work, 'dst');
    await mkdir(root);
    await writeFile(join(root, INCOMPLETE_MARKER), 'seed-x');
    const { sent, received } = await transfer(stream, root);
    expect(received).toMatchObject({ files: 3, bytes: stream.length });
    expect((received as { digest: string }).digest).toBe((sent as { digest: string }).digest);
    expect(await readFile(join(root, 'db', 't.ibd'), 'utf8')).toBe('rows'.repeat(50_000));
    expect((await readFile(join(root, 'ibdata1'))).equals(Buffer.alloc(700_000, 7))).toBe(true);
    expect(await readFile(join(root, INCOMPLETE_MARKER), 'utf8')).toBe('seed-x');
  });

  it('refuses a stream that climbs out of the datadir before anything is written, and a stream without its end', async () => {
    const root = join(work, 'evil', 'datadir');
    await mkdir(root, { recursive: true });
    const evil = Buffer.concat([chunk('P', 'ok.ibd', Buffer.from('fine')), chunk('E', 'ok.ibd'), chunk('P', '../outside', Buffer.from('owned')), chunk('E', '../outside')]);
    const error = await transfer(evil, root).catch((e: unknown) => e);
    expect((error as SeedwireError).code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(existsSync(join(work, 'evil', 'outside'))).toBe(false);

    const root2 = join(work, 'noend');
    await mkdir(root2);
    const good = execFileSync('mbstream', ['-c', 'ibdata1'], { cwd: join(work, 'src'), maxBuffer: 64 * 1024 * 1024 });
    const cut = await transfer(good, root2, { sendEnd: false }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(SeedwireError);
  });

  it('checks the extracted tree: no symlink out, nothing the stream did not carry', async () => {
    const root = join(work, 'tree');
    await mkdir(join(root, 'db'), { recursive: true });
    await writeFile(join(root, 'db', 'a.ibd'), 'a');
    await writeFile(join(root, INCOMPLETE_MARKER), 'seed');
    await checkExtractedTree(root, new Set(['db/a.ibd']));
    await expect(checkExtractedTree(root, new Set(['db/a.ibd', 'db/b.ibd']))).rejects.toMatchObject({ code: 'SEEDWIRE_VERIFY_FAILED' });
    await symlink('/etc', join(root, 'db', 'escape'));
    await expect(checkExtractedTree(root, new Set(['db/a.ibd']))).rejects.toMatchObject({ code: 'SEEDWIRE_PATH_ESCAPE' });
  });
});

// ---- end to end --------------------------------------------------------------------------------

describe.skipIf(missingTools(['mariabackup', 'mbstream', 'mariadbd', 'mariadb-install-db']))('hot backup seed through the controller (mariabackup)', () => {
  let base: string;
  let source: MariaDB;
  let target: MariaDB;
  let controller: RunningController;
  let sourceAgent: AgentProcess;
  let targetAgent: AgentProcess;

  const { api, op, agentsReady, seedUntilDone } = seedApi(() => controller);
  async function uptime(db: MariaDB): Promise<number> {
    return Number((await db.exec(`SHOW GLOBAL STATUS LIKE 'Uptime'`)).split('\t')[1]);
  }
  const mysqlOf = mysqlSectionOf;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sw-bkp-'));
    source = await createMariaDB({ baseDir: join(base, 'source'), serverId: 11 });
    target = await createMariaDB({ baseDir: join(base, 'target'), serverId: 12 });
    await source.start();
    await source.loadSampleData(ROWS_PER_TABLE);
    await source.exec(`UPDATE seedwire_sample.t2 SET amount = amount + 1 WHERE id % 7 = 0`);

    controller = await startController({ agentToken: TOKEN });
    sourceAgent = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'source', config: { mysql: mysqlOf(source), backup: { tool: 'mariabackup', socket: source.socket } } });
    targetAgent = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'target', config: { mysql: mysqlOf(target) } });
    // The same server through an agent without a backup section, and one whose socket is wrong.
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'plain', config: { mysql: mysqlOf(source) } });
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'badsock', config: { mysql: mysqlOf(source), backup: { tool: 'mariabackup', socket: join(base, 'no-such.sock') } } });
    // A backup source whose server is stopped (the target's, never started here).
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'stopped', config: { mysql: mysqlOf(target), backup: { tool: 'mariabackup', socket: target.socket } } });
    // The target's server through an agent whose mariabackup fails on --prepare, in its own words
    // (a wrapper first on its PATH; the backup itself and mbstream stay the real tools).
    const bin = join(base, 'badprep-bin');
    mkdirSync(bin);
    const real = execFileSync('bash', ['-c', 'command -v mariabackup'], { encoding: 'utf8' }).trim();
    writeFileSync(
      join(bin, 'mariabackup'),
      `#!/bin/bash\nfor a in "$@"; do\n  if [ "$a" = --prepare ]; then\n    echo '[00] FATAL ERROR: simulated: the redo log of this backup is unreadable' >&2\n    exit 1\n  fi\ndone\nexec ${real} "$@"\n`,
    );
    chmodSync(join(bin, 'mariabackup'), 0o755);
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'badprep', config: { mysql: mysqlOf(target) }, env: { PATH: `${bin}:${process.env['PATH'] ?? ''}` } });
    await agentsReady(['source', 'target', 'plain', 'badsock', 'stopped', 'badprep']);
  }, 300_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    await source?.destroy();
    await target?.destroy();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it('refuses method backup with 409 when the source has no backup section', async () => {
    const res = await api<{ error: { code: string; message: string } }>('POST', '/api/seeds', { source: 'plain', target: 'target', method: 'backup' });
    expect(res.status).toBe(409);
    expect(res.body.error.message).toBe('source plain has no backup section in its agent config (set backup.tool)');
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(false);
    const stopped = await api<{ error: { code: string; message: string } }>('POST', '/api/seeds', { source: 'stopped', target: 'source', method: 'backup' });
    expect(stopped.status).toBe(409);
    expect(stopped.body.error.message).toMatch(/not running on the source stopped/);
  });

  it('fails with SEEDWIRE_COMMAND_FAILED and mariabackup\'s own words when the backup cannot run', async () => {
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'badsock', target: 'target', method: 'backup' });
    expect(created.status).toBe(202);
    const seed = await seedUntilDone(created.body.seed.id);
    expect(seed.state).toBe('failed');
    expect(seed.error?.code).toBe('SEEDWIRE_COMMAND_FAILED');
    expect(seed.error?.message).toMatch(/mariabackup --backup exited \d+: [\s\S]*no-such\.sock/);
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(true);
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
  }, 120_000);

  it('copies the running source without stopping it; the target starts with every table matching and binlog coordinates are reported', async () => {
    const expected = await source.checksumTables();
    expect(expected.size).toBe(3);
    const master = (await source.exec('SHOW MASTER STATUS')).split('\t');
    const pid = readFileSync(source.pidFile, 'utf8').trim();
    const uptimeBefore = await uptime(source);

    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', method: 'backup' });
    expect(created.status).toBe(202);
    expect(created.body.seed.method).toBe('backup');
    let polls = 0;
    let seed!: SeedJson;
    await vi.waitFor(
      async () => {
        seed = (await api<SeedJson>('GET', `/api/seeds/${created.body.seed.id}`)).body;
        // The source answers queries the whole time.
        expect(await source.exec('SELECT 1')).toBe('1');
        polls += 1;
        expect(['pending', 'running']).not.toContain(seed.state);
      },
      { timeout: 240_000, interval: 200 },
    );
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(polls).toBeGreaterThan(0);
    expect(seed.stages.map((s) => [s.name, s.state])).toEqual([
      ['precheck', 'succeeded'],
      ['prepare-source', 'succeeded'],
      ['prepare-target', 'succeeded'],
      ['transfer', 'succeeded'],
      ['verify', 'succeeded'],
      ['finalize-target', 'succeeded'],
      ['cleanup-source', 'succeeded'],
    ]);
    expect(seed.stages.find((s) => s.name === 'prepare-source')?.message).toBe('hot backup: source keeps running');
    expect(seed.stages.find((s) => s.name === 'finalize-target')?.message).toMatch(/mariabackup --prepare/);

    // The source never stopped: same process, uptime kept growing.
    expect(readFileSync(source.pidFile, 'utf8').trim()).toBe(pid);
    expect(await uptime(source)).toBeGreaterThanOrEqual(uptimeBefore);
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);

    // Binlog coordinates of the backup: nothing was written during the seed, so they are the source's.
    expect(seed.result?.binlog).toMatchObject({ file: master[0], position: Number(master[1]) });
    expect(seed.result?.files).toBeGreaterThan(10);
    expect(seed.bytesDone).toBe(seed.result?.bytes);

    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(true);
    expect(await target.checksumTables()).toEqual(expected);
    const left = await readdir(target.datadir);
    expect(left).not.toContain(INCOMPLETE_MARKER);
    expect(left).not.toContain('xtrabackup_checkpoints');
    expect(left).toContain('xtrabackup_binlog_info');
  }, 300_000);

  it('survives a controller SIGKILL mid-transfer: a new attempt runs the backup again from the start', async () => {
    expect((await op<{ running: boolean }>('target', 'mysql-stop')).result.running).toBe(false);
    await source.exec(`INSERT INTO seedwire_sample.t3 VALUES (77777777, 'before-second-seed', 3.00, NOW())`);
    const expected = await source.checksumTables();
    const created = await api<{ seed: SeedJson & { attempts: number } }>('POST', '/api/seeds', { source: 'source', target: 'target', method: 'backup', maxBytesPerSec: 6 * 1024 * 1024 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    await vi.waitFor(
      async () => {
        const s = (await api<SeedJson>('GET', `/api/seeds/${id}`)).body;
        expect(s.stage).toBe('transfer');
        expect(s.bytesDone).toBeGreaterThan(8 * 1024 * 1024);
      },
      { timeout: 120_000, interval: 100 },
    );
    controller = await controller.restart();
    await agentsReady(['source', 'target']);
    const seed = (await seedUntilDone(id)) as SeedJson & { attempts: number };
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    // Every send of a backup stream starts at 0: a pipe cannot resume.
    const sends = sendsOf(sourceAgent, id);
    expect(sends.length).toBeGreaterThanOrEqual(2);
    expect(sends.every((s) => s.from === 0)).toBe(true);
    expect((await op<{ running: boolean }>('target', 'mysql-status')).result.running).toBe(true);
    expect(await target.checksumTables()).toEqual(expected);
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
  }, 300_000);

  it('abort kills mariabackup and mbstream, the source keeps running, the target keeps its marker', async () => {
    expect((await op<{ running: boolean }>('target', 'mysql-stop')).result.running).toBe(false);
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'target', method: 'backup', maxBytesPerSec: 4 * 1024 * 1024 });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    await vi.waitFor(async () => expect((await api<SeedJson>('GET', `/api/seeds/${id}`)).body.bytesDone).toBeGreaterThan(0), { timeout: 60_000, interval: 100 });
    const aborted = await api<{ seed: SeedJson }>('POST', `/api/seeds/${id}/abort`);
    expect(aborted.status).toBe(200);
    expect(aborted.body.seed.state).toBe('aborted');
    for (const agent of [sourceAgent, targetAgent]) await expectNoChildProcesses(agent);
    expect((await op<{ running: boolean }>('source', 'mysql-status')).result.running).toBe(true);
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(true);
    const start = await op<unknown>('target', 'mysql-start');
    expect(start.error?.code).toBe('SEEDWIRE_OP_REFUSED');
  }, 300_000);

  it("a failed --prepare is its step's failure: its own words in that operation's output and in the seed's error", async () => {
    const created = await api<{ seed: SeedJson }>('POST', '/api/seeds', { source: 'source', target: 'badprep', method: 'backup' });
    expect(created.status).toBe(202);
    const id = created.body.seed.id;
    const seed = await seedUntilDone(id);
    expect(seed.state).toBe('failed');
    expect(seed.stages.find((s) => s.name === 'finalize-target')?.state).toBe('failed');
    expect(seed.error?.code).toBe('SEEDWIRE_COMMAND_FAILED');
    expect(seed.error?.message).toContain('mariabackup --prepare exited 1: [00] FATAL ERROR: simulated: the redo log of this backup is unreadable');

    type Step = { id: string; agentId: string; op: string; state: string; exitCode: number | null; seedId: string; error: { code: string; message: string } | null };
    const steps = (await api<Step[]>('GET', `/api/operations?seed=${id}`)).body;
    expect(steps.map((s) => [s.agentId, s.op, s.state])).toEqual([
      ['badprep', 'seed-prepare-target', 'succeeded'],
      ['badprep', 'seed-receive', 'succeeded'],
      ['source', 'seed-send', 'succeeded'],
      ['badprep', 'seed-finalize-target', 'failed'],
      ['badprep', 'seed-cleanup-target', 'succeeded'],
    ]);
    const finalize = steps.find((s) => s.op === 'seed-finalize-target')!;
    expect(finalize).toMatchObject({ id: `${id}.finalize-target`, seedId: id, exitCode: 1, error: { code: 'SEEDWIRE_COMMAND_FAILED' } });
    const output = (await api<string>('GET', `/api/operations/${encodeURIComponent(finalize.id)}/output?follow=0`)).body;
    expect(output).toContain(`$ mariabackup --prepare --target-dir='${target.datadir}'`);
    expect(output).toContain('[00] FATAL ERROR: simulated: the redo log of this backup is unreadable');
    // mariabackup's own stderr during the backup is the send step's output.
    const send = steps.find((s) => s.op === 'seed-send')!;
    const sendOutput = (await api<string>('GET', `/api/operations/${encodeURIComponent(send.id)}/output?follow=0`)).body;
    expect(sendOutput).toMatch(/^\$ \S*mariabackup .*--backup/m);
    expect(sendOutput).toMatch(/^\[\d\d\] /m);

    const audit = (await api<Array<{ actor: string; action: string; outcome: string; message: string | null; params: { operationId?: string } | null }>>('GET', '/api/audit?limit=500')).body;
    const ended = audit.find((a) => a.params?.operationId === finalize.id && a.outcome === 'failed');
    expect(ended).toMatchObject({ actor: `seed:${id}`, action: 'op:seed-finalize-target' });
    expect(ended?.message).toContain('simulated: the redo log of this backup is unreadable');
    // The target never looks valid: its marker stays.
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(true);
  }, 300_000);
});
