/**
 * A rogue source: a protocol client that plays the source agent (test/helpers/controller-peer.ts)
 * answers the controller's seed calls and, for seed-send, streams hostile records, in the tree
 * format (method cold) and as an xbstream (method backup). Real controller and real target agent
 * processes; the target's "MySQL" is a status command that always says stopped, its datadir a
 * temp dir. Next to the datadir: a secret file and a decoy file the records aim at.
 *
 * Each stream fails its seed with SEEDWIRE_PATH_ESCAPE naming the record; nothing outside the
 * datadir is created, read or written; the secret appears in no error, audit row, operation, log
 * line or database page; the target agent keeps serving.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRecordHeader, type RecordHeader } from '../../agent/transfer/format.js';
import { encodeDataFrame } from '../../shared/codec.js';
import type { Frame } from '../../shared/frames.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { TestPeer } from '../helpers/controller-peer.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';
import { seedApi, type SeedJson } from '../helpers/seed-api.js';

const TOKEN = 'rogue-source-token';
const SECRET = `root:$6$${randomBytes(24).toString('hex')}:19000:0:99999:7:::`;
const DECOY = `decoy ${randomBytes(8).toString('hex')}`;

// ---- hostile streams --------------------------------------------------------------------------

function treeStream(records: Array<{ header: RecordHeader; data?: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const { header, data } of records) {
    parts.push(encodeRecordHeader(header));
    if (header.type === 'file') {
      const bytes = data ?? Buffer.alloc(0);
      parts.push(bytes.subarray(0, header.size), createHash('sha256').update(bytes).digest());
    }
  }
  return Buffer.concat(parts);
}

function xbChunk(path: string, payload: Buffer, declared = payload.length): Buffer {
  const p = Buffer.from(path, 'utf8');
  const head = Buffer.alloc(14);
  head.write('XBSTCK01', 0, 'latin1');
  head[9] = 0x50; // 'P'
  head.writeUInt32LE(p.length, 10);
  const lengths = Buffer.alloc(20);
  lengths.writeBigUInt64LE(BigInt(declared), 0);
  return Buffer.concat([head, p, lengths, payload]);
}

interface HostileCase {
  name: string;
  method: 'cold' | 'backup';
  stream: (outside: string) => Buffer;
  /** What the seed's error message must contain (the record, as shown). */
  names: string;
}

const file = (path: string, data: Buffer, mode = 0o644): { header: RecordHeader; data: Buffer } => ({ header: { type: 'file', path, mode, mtimeMs: 0, size: data.length }, data });
const link = (path: string, target: string): { header: RecordHeader } => ({ header: { type: 'symlink', path, mode: 0o777, mtimeMs: 0, target } });
const dir = (path: string): { header: RecordHeader } => ({ header: { type: 'dir', path, mode: 0o755, mtimeMs: 0 } });
const EVIL = Buffer.from('evil bytes from the rogue source');
const ok = xbChunk('ibdata1', Buffer.alloc(100, 1));

const CASES: HostileCase[] = [
  { name: 'the marker as a symlink to the secret', method: 'cold', stream: (o) => treeStream([link(INCOMPLETE_MARKER, join(o, 'secret'))]), names: '".seedwire-incomplete"' },
  { name: 'the marker as a file', method: 'cold', stream: () => treeStream([file(INCOMPLETE_MARKER, EVIL)]), names: '".seedwire-incomplete"' },
  { name: 'a symlink to the secret', method: 'cold', stream: (o) => treeStream([dir('db'), link('db/leak', join(o, 'secret'))]), names: '"db/leak"' },
  { name: 'a relative symlink climbing out to the decoy', method: 'cold', stream: () => treeStream([link('decoy-link', '../decoy')]), names: '"decoy-link"' },
  { name: 'a file written under a symlink', method: 'cold', stream: () => treeStream([dir('d'), link('in', 'd'), file('in/x', EVIL)]), names: '"in/x"' },
  { name: 'a file written through a symlink', method: 'cold', stream: () => treeStream([file('ibdata1', Buffer.from('x')), link('f', 'ibdata1'), file('f', EVIL)]), names: '"f"' },
  { name: 'a newline in a name', method: 'cold', stream: () => treeStream([file('db/a\nb', EVIL)]), names: '"db/a\\nb"' },
  { name: 'an escape sequence in a name', method: 'cold', stream: () => treeStream([file('\u001b[2Jx', EVIL)]), names: '"\\u001b[2Jx"' },
  { name: 'a path climbing out with ..', method: 'cold', stream: () => treeStream([file('../created-by-rogue', EVIL)]), names: '"../created-by-rogue"' },
  { name: 'an absolute path', method: 'cold', stream: (o) => treeStream([file(join(o, 'created-by-rogue'), EVIL)]), names: 'created-by-rogue' },
  { name: 'auto.cnf', method: 'cold', stream: () => treeStream([file('auto.cnf', EVIL)]), names: '"auto.cnf"' },
  { name: 'a pid file', method: 'cold', stream: () => treeStream([file('mysqld.pid', EVIL)]), names: '"mysqld.pid"' },
  { name: 'a size past what the precheck promised', method: 'cold', stream: () => treeStream([{ header: { type: 'file', path: 'ibdata1', mode: 0o644, mtimeMs: 0, size: 2 ** 40 }, data: EVIL }]), names: '"ibdata1"' },
  { name: 'xbstream: an absolute path', method: 'backup', stream: (o) => Buffer.concat([ok, xbChunk(join(o, 'created-by-rogue'), EVIL)]), names: 'created-by-rogue' },
  { name: 'xbstream: a path climbing out with ..', method: 'backup', stream: () => Buffer.concat([ok, xbChunk('../created-by-rogue', EVIL)]), names: '../created-by-rogue' },
  { name: 'xbstream: the marker', method: 'backup', stream: () => Buffer.concat([ok, xbChunk(INCOMPLETE_MARKER, EVIL)]), names: '".seedwire-incomplete"' },
  { name: 'xbstream: auto.cnf', method: 'backup', stream: () => Buffer.concat([ok, xbChunk('auto.cnf', EVIL)]), names: '"auto.cnf"' },
  { name: 'xbstream: a newline in a name', method: 'backup', stream: () => Buffer.concat([ok, xbChunk('db/a\nb.ibd', EVIL)]), names: '"db/a\\nb.ibd"' },
  { name: 'xbstream: a size past what the precheck promised', method: 'backup', stream: () => Buffer.concat([ok, xbChunk('big.ibd', EVIL, 2 ** 40)]), names: '"big.ibd"' },
];

// ---- the rogue source ---------------------------------------------------------------------------

/** Plays the source agent: facts, sizes, status, and for seed-send the stream of the current case. */
class RogueSource {
  readonly peer: TestPeer;
  stream: Buffer = Buffer.alloc(0);
  running = false;
  sends = 0;
  /** Bytes sent past a seed-send's credit limit (the relay would drop them): must stay 0. */
  overLimit = 0;

  constructor(url: string) {
    this.peer = new TestPeer({ url, token: TOKEN, agentId: 'rogue' });
    this.peer.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.t === 'call') this.answer(frame.id, frame.op, frame.params);
      if (frame.t === 'cancel') this.peer.send({ t: 'error', id: frame.id, code: 'SEEDWIRE_CANCELED', message: 'canceled' });
    });
  }

  async connect(): Promise<void> {
    await this.peer.connect();
    this.peer.send({
      t: 'facts',
      facts: {
        hostname: 'rogue.test',
        datacenter: 'dc1',
        mysqlConfigured: true,
        mysqlRunning: false,
        mysqlPort: 3306,
        datadir: '/var/lib/mysql',
        datadirBytes: 1000,
        datadirFreeBytes: 10 ** 12,
        incompleteSeed: null,
        snapshotBackend: 'none',
        snapshots: [],
        mounted: null,
        backupTool: 'mariabackup',
        customCommands: [],
        collectedAt: new Date().toISOString(),
      },
    });
  }

  private answer(id: string, op: string, params: Record<string, unknown>): void {
    const result = (value: unknown): void => this.peer.send({ t: 'result', id, result: value, durationMs: 1 });
    switch (op) {
      case 'mysql-status':
        return result({ running: this.running });
      case 'seed-source-size':
        return result({ bytes: 1000, files: 1 });
      case 'seed-send': {
        this.sends += 1;
        const stream = Number(params['stream']);
        const limit = Number(params['limit']);
        this.overLimit += Math.max(0, this.stream.length - limit);
        this.peer.sendRaw(encodeDataFrame({ stream, offset: 0, rawLength: this.stream.length, codec: 'none', payload: this.stream }));
        return; // answered by the cancel once the target has refused
      }
      default:
        return result({});
    }
  }
}

// ---- the test -------------------------------------------------------------------------------------

describe.skipIf(missingTools(['mbstream']))('a rogue source cannot reach outside the target datadir', () => {
  let outside: string;
  let datadir: string;
  let controller: RunningController;
  let target: AgentProcess;
  let rogue: RogueSource;
  const { api, op, agentsReady, seedUntilDone } = seedApi(() => controller);
  const past = new Date('2001-01-01T00:00:00Z');

  beforeAll(async () => {
    outside = mkdtempSync(join(tmpdir(), 'sw-rogue-'));
    datadir = join(outside, 'datadir');
    mkdirSync(datadir);
    writeFileSync(join(outside, 'secret'), `${SECRET}\n`, { mode: 0o600 });
    writeFileSync(join(outside, 'decoy'), DECOY);
    // An atime older than the mtime: relatime then records any read.
    utimesSync(join(outside, 'secret'), past, new Date());
    utimesSync(join(outside, 'decoy'), past, new Date());

    controller = await startController({ agentToken: TOKEN });
    target = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'dst',
      config: { datacenter: 'dc1', mysql: { datadir, startCommand: 'true', stopCommand: 'true', statusCommand: 'exit 1', commandTimeoutSeconds: 10 } },
    });
    rogue = new RogueSource(controller.wsUrl);
    await rogue.connect();
    await agentsReady(['rogue', 'dst']);
  }, 60_000);

  afterAll(async () => {
    await rogue?.peer.close();
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    if (outside) rmSync(outside, { recursive: true, force: true });
  });

  it('refuses every hostile record with SEEDWIRE_PATH_ESCAPE naming it, and touches nothing outside', async () => {
    const secretBefore = statSync(join(outside, 'secret'));
    const decoyBefore = statSync(join(outside, 'decoy'));
    const failures: SeedJson[] = [];
    for (const c of CASES) {
      rogue.stream = c.stream(outside);
      rogue.running = c.method === 'backup'; // a hot backup's precheck wants the source running
      const sendsBefore = rogue.sends;
      const created = await api<{ seed: { id: string }; error?: unknown }>('POST', '/api/seeds', { source: 'rogue', target: 'dst', method: c.method, startTarget: false });
      expect(created.status, `${c.name}: ${JSON.stringify(created.body)}`).toBe(202);
      const seed = await seedUntilDone(created.body.seed.id);
      expect(rogue.sends, c.name).toBe(sendsBefore + 1);
      expect(seed.state, c.name).toBe('failed');
      expect(seed.error?.code, `${c.name}: ${seed.error?.message}`).toBe('SEEDWIRE_PATH_ESCAPE');
      expect(seed.error?.message, c.name).toContain(c.names);
      // eslint-disable-next-line no-control-regex -- no raw control character may reach an error
      expect(seed.error?.message, c.name).not.toMatch(/[\u0000-\u001f]/);
      failures.push(seed);
      // Cleanup leaves the marker and nothing else: no hostile record survives.
      expect(readdirSync(datadir), c.name).toEqual([INCOMPLETE_MARKER]);
    }
    expect(failures).toHaveLength(CASES.length);
    expect(rogue.overLimit).toBe(0);

    // Nothing outside the datadir was created, read or written.
    expect(readdirSync(outside).sort()).toEqual(['datadir', 'decoy', 'secret']);
    expect(existsSync(join(tmpdir(), 'created-by-rogue'))).toBe(false);
    const secretAfter = statSync(join(outside, 'secret'));
    const decoyAfter = statSync(join(outside, 'decoy'));
    expect(readFileSync(join(outside, 'secret'), 'utf8')).toBe(`${SECRET}\n`);
    expect(readFileSync(join(outside, 'decoy'), 'utf8')).toBe(DECOY);
    expect(secretAfter.mtimeMs).toBe(secretBefore.mtimeMs);
    expect(secretAfter.atimeMs).toBe(secretBefore.atimeMs);
    expect(decoyAfter.mtimeMs).toBe(decoyBefore.mtimeMs);
    expect(decoyAfter.atimeMs).toBe(decoyBefore.atimeMs);

    // The target keeps serving.
    const hostname = await op<{ hostname: string }>('dst', 'hostname');
    expect(hostname.state).toBe('succeeded');

    // The secret (or any line of it) is nowhere: seeds, audit, operations, logs, the database.
    const secretBits = [SECRET, SECRET.split(':')[1] as string, DECOY];
    const seeds = JSON.stringify((await api<unknown>('GET', '/api/seeds')).body);
    const audit = JSON.stringify((await api<unknown>('GET', '/api/audit?limit=1000')).body);
    const operations = JSON.stringify((await api<unknown>('GET', '/api/operations?agent=dst')).body);
    const agentLogs = JSON.stringify(target.logs.items) + target.stdoutText.join('\n') + target.stderr();
    const database = readdirSync(controller.dataDir)
      .filter((name) => name.startsWith('seedwire.db'))
      .map((name) => readFileSync(join(controller.dataDir, name)).toString('latin1'))
      .join('');
    for (const [where, text] of Object.entries({ seeds, audit, operations, agentLogs, controllerLogs: controller.output(), database })) {
      for (const bit of secretBits) expect(text.includes(bit), `${where} holds part of the secret`).toBe(false);
    }
    expect(audit).toContain('SEEDWIRE_PATH_ESCAPE');
  }, 240_000);
});
