import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgentStore } from '../../server-stub/store/agents.js';
import { createAuditStore } from '../../server-stub/store/audit.js';
import { closeDatabase, openDatabase } from '../../server-stub/store/db.js';
import { createSqliteExecutor } from '../../server-stub/store/sql.js';
import { SCHEMA_VERSION } from '../../server-stub/store/migrations.js';
import { createOperationStore } from '../../server-stub/store/operations.js';
import { createOutputStore, formatTruncation, takeTailBytes } from '../../server-stub/store/output.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-store-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function newOperation(dir: string) {
  const db = openDatabase(dir);
  const operations = createOperationStore(createSqliteExecutor(db));
  await operations.insert({ id: 'op-1', agentId: 'a1', op: 'exec', params: { command: 'x' }, createdAt: new Date().toISOString(), actor: 'admin' });
  return { db, operations };
}

describe('controller store: output cap', () => {
  it('keeps the head up to the cap, one truncation marker, and the latest tail', async () => {
    const dir = tempDir();
    const { db, operations } = await newOperation(dir);
    const output = createOutputStore(createSqliteExecutor(db), { capBytes: 100, tailBytes: 30 });
    for (let i = 0; i < 20; i++) await output.append('op-1', 'stdout', `line ${String(i).padStart(2, '0')}\n`); // 8 bytes each
    const chunks = await output.readChunks('op-1');
    expect(chunks.filter((c) => c.stream === 'marker')).toHaveLength(1);
    const stored = chunks.filter((c) => c.stream !== 'marker').map((c) => c.data).join('');
    expect(Buffer.byteLength(stored)).toBe(100);
    expect(stored.startsWith('line 00\n')).toBe(true);
    const tail = (await operations.get('op-1'))!.outputTail;
    expect(tail.endsWith('line 19\n')).toBe(true);
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(30);
    const text = await output.readText('op-1');
    const total = 20 * 8;
    expect(text).toBe(stored + formatTruncation(total - 100 - 30) + tail);
    closeDatabase(db);
  });

  it('keeps counting after the cap without storing more rows', async () => {
    const dir = tempDir();
    const { db } = await newOperation(dir);
    const output = createOutputStore(createSqliteExecutor(db), { capBytes: 10, tailBytes: 8 });
    expect((await output.append('op-1', 'stdout', '0123456789ABC')).seq).toBe(0);
    expect((await output.append('op-1', 'stderr', 'more')).seq).toBeNull();
    expect((await output.readChunks('op-1')).map((c) => c.stream)).toEqual(['stdout', 'marker']);
    expect(await output.readText('op-1')).toBe(`0123456789${formatTruncation(0)}ABCmore`);
    closeDatabase(db);
  });

  it('takeTailBytes never splits a UTF-8 character', () => {
    expect(takeTailBytes('aéé', 3)).toBe('é');
  });
});

describe('controller store: persistence', () => {
  it('agents, operations, output and audit survive reopening the database', async () => {
    const dir = tempDir();
    const { db, operations } = await newOperation(dir);
    await createOutputStore(createSqliteExecutor(db)).append('op-1', 'stdout', 'hello\n');
    await createAgentStore(createSqliteExecutor(db)).upsertOnHello({ id: 'a1', hostname: 'h1', datacenter: 'dc1', version: '1', capabilities: ['x'], connectedAt: new Date().toISOString() });
    await createAuditStore(createSqliteExecutor(db)).insert({ at: new Date().toISOString(), actor: 'admin', agentId: 'a1', action: 'op:exec', params: { a: 1 }, outcome: 'started', message: null });
    await operations.finish('op-1', { state: 'succeeded', endedAt: new Date().toISOString(), result: { exitCode: 0 }, error: null, exitCode: 0 });
    closeDatabase(db);
    closeDatabase(db); // idempotent

    const again = openDatabase(dir);
    expect(again.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(again.pragma('journal_mode', { simple: true })).toBe('wal');
    const op = (await createOperationStore(createSqliteExecutor(again)).get('op-1'))!;
    expect(op).toMatchObject({ state: 'succeeded', result: { exitCode: 0 }, exitCode: 0, outputTail: 'hello\n', params: { command: 'x' } });
    expect(await createOutputStore(createSqliteExecutor(again)).readText('op-1')).toBe('hello\n');
    expect(await createAgentStore(createSqliteExecutor(again)).get('a1')).toMatchObject({ hostname: 'h1', capabilities: ['x'] });
    expect(await createAuditStore(createSqliteExecutor(again)).list(10)).toEqual([expect.objectContaining({ actor: 'admin', action: 'op:exec', params: { a: 1 } })]);
    closeDatabase(again);
  });

  it('finish() sets the final state only once', async () => {
    const dir = tempDir();
    const { db, operations } = await newOperation(dir);
    const end = { endedAt: new Date().toISOString(), result: null, error: null, exitCode: null };
    expect(await operations.finish('op-1', { state: 'canceled', ...end })).toBe(true);
    expect(await operations.finish('op-1', { state: 'succeeded', ...end })).toBe(false);
    expect((await operations.get('op-1'))!.state).toBe('canceled');
    closeDatabase(db);
  });
});

describe('controller store: a seed\'s steps', () => {
  it('links operations to a seed, lists them in the order they started, and reopens an ended one', async () => {
    const dir = tempDir();
    const { db, operations } = await newOperation(dir);
    const at = new Date().toISOString();
    for (const [id, agentId] of [['s1.prepare-target', 'b'], ['s1.receive.1', 'b'], ['s2.prepare-target', 'b'], ['s1.send.1', 'a']] as const) {
      await operations.insert({ id, agentId, op: 'mysql-status', params: {}, createdAt: at, actor: `seed:${id.split('.')[0]}`, seedId: id.split('.')[0]! });
    }
    expect((await operations.get('op-1'))!.seedId).toBeNull();
    expect((await operations.list({ seedId: 's1', limit: 100 })).map((o) => o.id)).toEqual(['s1.prepare-target', 's1.receive.1', 's1.send.1']);
    expect((await operations.list({ seedId: 's1', agentId: 'b', limit: 100 })).map((o) => o.id)).toEqual(['s1.prepare-target', 's1.receive.1']);
    expect(await operations.list({ seedId: 'nope', limit: 100 })).toEqual([]);
    // Without a seed: newest first, as before.
    expect((await operations.list({ limit: 2 })).map((o) => o.id)).toEqual(['s1.send.1', 's2.prepare-target']);

    expect(await operations.reopen('s1.send.1')).toBe(false); // still running
    await operations.finish('s1.send.1', { state: 'failed', endedAt: at, result: null, error: { code: 'SEEDWIRE_LOST', message: 'lost' }, exitCode: null });
    expect(await operations.reopen('s1.send.1')).toBe(true);
    expect(await operations.get('s1.send.1')).toMatchObject({ state: 'running', endedAt: null, error: null, seedId: 's1' });
    closeDatabase(db);
  });
});
