/**
 * The store's contract, run against both implementations: SQLite in a temporary data dir and a
 * real PostgreSQL (test/helpers/postgres.ts, a fresh database per case). The same cases, the same
 * expectations: the controller cannot tell which engine it runs on. PostgreSQL's own concerns
 * (migrations under an advisory lock, a newer schema refused) follow.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_STAGES } from '../../server-stub/seed/types.js';
import { openStore } from '../../server-stub/store/open.js';
import { openDatabase } from '../../server-stub/store/db.js';
import { createOutputStore, formatTruncation } from '../../server-stub/store/output.js';
import { PG_SCHEMA_VERSION } from '../../server-stub/store/postgres-migrations.js';
import { createPgExecutor, openPostgresStore } from '../../server-stub/store/postgres.js';
import { createSqliteExecutor, prepared } from '../../server-stub/store/sql.js';
import type { Store } from '../../server-stub/store/types.js';
import { missingPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';

const skipPostgres = missingPostgres();
let server: PostgresServer | null = null;
const dirs: string[] = [];
const stores: Store[] = [];
let databases = 0;

beforeAll(async () => {
  if (!skipPostgres) server = await startPostgres();
}, 60_000);

afterAll(async () => {
  for (const store of stores.splice(0)) await store.close();
  await server?.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function freshPostgresUrl(): Promise<string> {
  return server!.createDatabase(`contract_${process.pid}_${++databases}`);
}

const engines: Array<{ name: 'sqlite' | 'postgres'; skip: string | null; open: () => Promise<Store> }> = [
  {
    name: 'sqlite',
    skip: null,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'seedwire-contract-'));
      dirs.push(dir);
      const store = await openStore({ dataDir: dir, url: null });
      stores.push(store);
      return store;
    },
  },
  {
    name: 'postgres',
    skip: skipPostgres,
    async open() {
      const store = await openStore({ dataDir: '/nonexistent', url: await freshPostgresUrl() });
      stores.push(store);
      return store;
    },
  },
];

const AT = '2026-01-01T00:00:00.000Z';

/** `n` stores on one fresh PostgreSQL database. */
async function openSharedPostgres(n: number): Promise<Store[]> {
  const url = await freshPostgresUrl();
  const opened: Store[] = [];
  for (let i = 0; i < n; i++) opened.push(await openPostgresStore(url));
  stores.push(...opened);
  return opened;
}

describe.each(engines)('store contract: $name', ({ name, skip, open }) => {
  it.skipIf(skip !== null)('agents: upsert on hello, facts, last seen, list, count', async () => {
    const store = await open();
    expect(store.kind).toBe(name);
    expect(await store.agents.count()).toBe(0);
    await store.agents.upsertOnHello({ id: 'b', hostname: 'hb', datacenter: null, version: '1', capabilities: ['exec'], connectedAt: AT });
    await store.agents.upsertOnHello({ id: 'a', hostname: 'ha', datacenter: 'dc1', version: '1', capabilities: [], connectedAt: AT });
    await store.agents.upsertOnHello({ id: 'b', hostname: 'hb2', datacenter: 'dc2', version: '2', capabilities: ['x', 'y'], connectedAt: '2026-01-02T00:00:00.000Z' });
    await store.agents.touchMany([['b', '2026-01-03T00:00:00.000Z']]);
    await store.agents.updateFacts('a', { hostname: 'ha' } as never);
    expect(await store.agents.count()).toBe(2);
    expect((await store.agents.list()).map((a) => a.id)).toEqual(['a', 'b']);
    expect(await store.agents.get('b')).toEqual({
      id: 'b',
      hostname: 'hb2',
      datacenter: 'dc2',
      version: '2',
      capabilities: ['x', 'y'],
      connectedAt: '2026-01-02T00:00:00.000Z',
      lastSeenAt: '2026-01-03T00:00:00.000Z',
      facts: null,
    });
    expect((await store.agents.get('a'))?.facts).toEqual({ hostname: 'ha' });
    expect(await store.agents.get('nope')).toBeNull();
  });

  it.skipIf(skip !== null)('agents: many last-seen times in one call, in chunks, touching only the named rows', async () => {
    const store = await open();
    const ids = Array.from({ length: 300 }, (_, i) => `db-${String(i).padStart(3, '0')}`);
    for (const id of [...ids, 'untouched']) await store.agents.upsertOnHello({ id, hostname: id, datacenter: null, version: '1', capabilities: [], connectedAt: AT });
    // 300 = 256 + 32 + 8 + 4: four statements; each row gets its own time.
    await store.agents.touchMany(ids.map((id, i) => [id, `2026-02-01T00:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(3, '0')}Z`] as const));
    await store.agents.touchMany([]);
    const rows = new Map((await store.agents.list()).map((a) => [a.id, a.lastSeenAt]));
    ids.forEach((id, i) => expect(rows.get(id)).toBe(`2026-02-01T00:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(3, '0')}Z`));
    expect(rows.get('untouched')).toBe(AT);
  });

  it.skipIf(skip !== null)('identities: one enrollment, revoke, readmit for exactly one more', async () => {
    const { identities } = await open();
    expect(await identities.enroll('db-1', 'h1', 't1')).toBe(true);
    expect(await identities.enroll('db-1', 'h2', 't2')).toBe(false);
    expect(await identities.readmit('db-1', 't3')).toBeNull();
    expect(await identities.revoke('db-1', 'credential', 't4')).toMatchObject({ agentId: 'db-1', state: 'revoked', revokedAt: 't4', hasCredential: true });
    expect(await identities.enroll('db-1', 'h5', 't5')).toBe(false);
    expect(await identities.readmit('db-1', 't6')).toMatchObject({ state: 'readmitted', readmittedAt: 't6' });
    expect(await identities.enroll('db-1', 'h7', 't7')).toBe(true);
    expect(await identities.enroll('db-1', 'h8', 't8')).toBe(false);
    await identities.noteAdmitted('db-t', 'token', 't9');
    await identities.noteAdmitted('db-1', 'token', 't9'); // enrolled: unchanged
    expect((await identities.list()).map((row) => [row.agentId, row.state, row.method])).toEqual([
      ['db-1', 'enrolled', 'credential'],
      ['db-t', 'enrolled', 'token'],
    ]);
    expect(await identities.get('db-1')).toMatchObject({ enrolledAt: 't7' });
  });

  it.skipIf(skip !== null)('operations: insert, finish once, reopen, list by agent and seed in order, running, counts', async () => {
    const { operations } = await open();
    for (const [id, agentId, seedId] of [['o1', 'a', 's1'], ['o2', 'b', 's1'], ['o3', 'a', null], ['o4', 'b', 's2'], ['o5', 'b', 's1']] as const) {
      const row = await operations.insert({ id, agentId, op: 'hostname', params: { n: id }, createdAt: AT, actor: 'admin', seedId });
      expect(row).toMatchObject({ id, agentId, state: 'running', params: { n: id }, seedId, outputTail: '', endedAt: null, result: null, error: null, exitCode: null });
    }
    const ids = async (filter: Parameters<typeof operations.list>[0]): Promise<string[]> => (await operations.list(filter)).map((o) => o.id);
    expect(await ids({ limit: 10 })).toEqual(['o5', 'o4', 'o3', 'o2', 'o1']);
    expect(await ids({ limit: 2 })).toEqual(['o5', 'o4']);
    expect(await ids({ agentId: 'a', limit: 10 })).toEqual(['o3', 'o1']);
    expect(await ids({ seedId: 's1', limit: 10 })).toEqual(['o1', 'o2', 'o5']);
    expect(await ids({ seedId: 's1', agentId: 'b', limit: 10 })).toEqual(['o2', 'o5']);
    const end = { endedAt: AT, result: { ok: 1 }, error: null, exitCode: 0 };
    expect(await operations.finish('o1', { state: 'succeeded', ...end })).toBe(true);
    expect(await operations.finish('o1', { state: 'failed', ...end })).toBe(false);
    expect(await operations.finish('o2', { state: 'failed', endedAt: AT, result: null, error: { code: 'SEEDWIRE_LOST', message: 'lost' }, exitCode: null })).toBe(true);
    expect(await operations.get('o1')).toMatchObject({ state: 'succeeded', result: { ok: 1 }, exitCode: 0 });
    expect(await operations.reopen('o3')).toBe(false);
    expect(await operations.reopen('o2')).toBe(true);
    expect(await operations.get('o2')).toMatchObject({ state: 'running', error: null, endedAt: null });
    expect((await operations.listRunning()).map((o) => o.id)).toEqual(['o2', 'o3', 'o4', 'o5']);
    expect((await operations.listRunning('a')).map((o) => o.id)).toEqual(['o3']);
    expect((await operations.countByState()).sort((x, y) => x.state.localeCompare(y.state))).toEqual([
      { state: 'running', n: 4 },
      { state: 'succeeded', n: 1 },
    ]);
  });

  it.skipIf(skip !== null)('operations: start and end write the row and its audit row together; the end audits the final state', async () => {
    const store = await open();
    const { operations } = store;
    const started = { at: AT, actor: 'admin', agentId: 'a', action: 'op:exec', params: { operationId: 'o1', params: { command: 'x' } }, outcome: 'started', message: null };
    const row = await operations.start({ id: 'o1', agentId: 'a', op: 'exec', params: { command: 'x' }, createdAt: AT, actor: 'admin', seedId: 's1' }, started);
    expect(row).toMatchObject({ id: 'o1', agentId: 'a', op: 'exec', state: 'running', params: { command: 'x' }, seedId: 's1', outputTail: '', endedAt: null });
    expect(await store.audit.list(10)).toEqual([started]);
    // A second start under the same id writes neither row.
    await expect(operations.start({ id: 'o1', agentId: 'a', op: 'exec', params: {}, createdAt: AT, actor: 'admin' }, { ...started, at: 'again' })).rejects.toThrow();
    expect(await store.audit.list(10)).toHaveLength(1);

    const base = { at: 't2', actor: 'admin', agentId: 'a', action: 'op:exec', params: { operationId: 'o1', seedId: 's1' } };
    const failure = { code: 'SEEDWIRE_EXEC_FAILED', message: 'exit 3' };
    const ended = await operations.end('o1', { state: 'failed', endedAt: 't2', result: null, error: failure, exitCode: 3 }, base);
    expect(ended).toMatchObject({ id: 'o1', state: 'failed', endedAt: 't2', error: failure, exitCode: 3 });
    expect(await operations.get('o1')).toEqual(ended);
    expect((await store.audit.list(10))[0]).toEqual({ ...base, outcome: 'failed', message: 'exit 3' });
    // Ended already: the state stays, and the audit row says the state it has.
    const again = await operations.end('o1', { state: 'succeeded', endedAt: 't3', result: { ok: 1 }, error: null, exitCode: 0 }, { ...base, at: 't3' });
    expect(again).toMatchObject({ state: 'failed', endedAt: 't2' });
    expect((await store.audit.list(10))[0]).toEqual({ ...base, at: 't3', outcome: 'failed', message: 'exit 3' });
    // No such operation: nothing written.
    expect(await operations.end('nope', { state: 'succeeded', endedAt: 't4', result: null, error: null, exitCode: 0 }, { ...base, at: 't4' })).toBeNull();
    expect(await store.audit.list(10)).toHaveLength(3);
    const ok = await operations.start({ id: 'o2', agentId: 'b', op: 'hostname', params: {}, createdAt: AT, actor: 'admin' }, { ...started, agentId: 'b', at: 't5' });
    expect(await operations.end(ok.id, { state: 'succeeded', endedAt: 't6', result: { hostname: 'b' }, error: null, exitCode: null }, { ...base, agentId: 'b', at: 't6' })).toMatchObject({ state: 'succeeded', result: { hostname: 'b' } });
    expect((await store.audit.list(1))[0]).toMatchObject({ at: 't6', outcome: 'succeeded', message: null });

    // An operation that ended before its row was written: the ended row and both audit rows at once.
    const quick = await operations.record(
      { id: 'o3', agentId: 'c', op: 'hostname', params: {}, createdAt: 't7', actor: 'admin' },
      { ...started, agentId: 'c', action: 'op:hostname', at: 't7', params: { operationId: 'o3', params: {} } },
      { state: 'succeeded', endedAt: 't8', result: { hostname: 'c' }, error: null, exitCode: null },
      { at: 't8', actor: 'admin', agentId: 'c', action: 'op:hostname', params: { operationId: 'o3' } },
    );
    expect(quick).toMatchObject({ id: 'o3', state: 'succeeded', createdAt: 't7', endedAt: 't8', result: { hostname: 'c' }, outputTail: '', seedId: null });
    expect(await operations.get('o3')).toEqual(quick);
    expect((await store.audit.list(2)).map((a) => [a.at, a.outcome, a.params])).toEqual([
      ['t8', 'succeeded', { operationId: 'o3' }],
      ['t7', 'started', { operationId: 'o3', params: {} }],
    ]);
  });

  it.skipIf(skip !== null)('output: head to the cap, one marker, the rolling tail, and the bytes a read covers', async () => {
    const store = await open();
    await store.operations.insert({ id: 'op', agentId: 'a', op: 'exec', params: {}, createdAt: AT, actor: 'admin' });
    expect(await store.output.append('op', 'stdout', 'hello\n')).toEqual({ seq: 0, bytes: 6 });
    expect(await store.output.append('op', 'stderr', 'oops\n')).toEqual({ seq: 1, bytes: 11 });
    expect(await store.output.readStored('op')).toEqual({ text: 'hello\noops\n', bytes: 11 });
    expect(await store.output.readChunks('op')).toEqual([
      { seq: 0, stream: 'stdout', data: 'hello\n' },
      { seq: 1, stream: 'stderr', data: 'oops\n' },
    ]);
    expect(await store.output.append('nope', 'stdout', 'x')).toEqual({ seq: null, bytes: 0 });
    expect((await store.operations.get('op'))?.outputTail).toBe('hello\noops\n');
  });

  it.skipIf(skip !== null)("output frames by the agent's seq: one sent again is stored once; a reopened operation counts from 0", async () => {
    const store = await open();
    const { output, operations } = store;
    await operations.insert({ id: 'op', agentId: 'a', op: 'exec', params: {}, createdAt: AT, actor: 'admin' });
    expect(await output.lastFrameSeq('op')).toBe(-1);
    expect(await output.lastFrameSeq('nope')).toBeNull();
    expect(await output.append('op', 'stdout', 'one\n', 0)).toEqual({ seq: 0, bytes: 4 });
    expect(await output.append('op', 'stdout', 'two\n', 1)).toEqual({ seq: 1, bytes: 8 });
    // The agent sends both again after a reconnect (their ack was lost), then the next one.
    expect(await output.append('op', 'stdout', 'one\n', 0)).toEqual({ seq: null, bytes: 8, duplicate: true });
    expect(await output.append('op', 'stdout', 'two\n', 1)).toEqual({ seq: null, bytes: 8, duplicate: true });
    expect(await output.append('op', 'stderr', 'three\n', 2)).toEqual({ seq: 2, bytes: 14 });
    expect(await output.lastFrameSeq('op')).toBe(2);
    expect(await output.readText('op')).toBe('one\ntwo\nthree\n');
    // A chunk with no seq (a note) is always stored, and leaves the last frame's seq alone.
    await output.append('op', 'stdout', '[note]\n');
    expect(await output.lastFrameSeq('op')).toBe(2);
    // Ended, then sent again under its id: the agent runs it anew, from seq 0.
    await operations.finish('op', { state: 'failed', endedAt: AT, result: null, error: { code: 'SEEDWIRE_LOST', message: 'lost' }, exitCode: null });
    expect(await operations.reopen('op')).toBe(true);
    expect(await output.append('op', 'stdout', 'again\n', 0)).toMatchObject({ seq: 4 });
    expect(await output.readText('op')).toBe('one\ntwo\nthree\n[note]\nagain\n');
    // Output stored by a release that did not record seqs: where it ends is unknown.
    await operations.insert({ id: 'old', agentId: 'a', op: 'exec', params: {}, createdAt: AT, actor: 'admin' });
    await output.append('old', 'stdout', 'legacy\n');
    expect(await output.lastFrameSeq('old')).toBeNull();
  });

  it.skipIf(skip !== null)('audit: newest first, limited', async () => {
    const { audit } = await open();
    for (let i = 0; i < 5; i++) await audit.insert({ at: AT, actor: 'admin', agentId: i % 2 ? 'a' : null, action: `act${i}`, params: i === 0 ? null : { i }, outcome: 'ok', message: i === 4 ? 'last' : null });
    const rows = await audit.list(3);
    expect(rows.map((r) => r.action)).toEqual(['act4', 'act3', 'act2']);
    expect(rows[0]).toEqual({ at: AT, actor: 'admin', agentId: null, action: 'act4', params: { i: 4 }, outcome: 'ok', message: 'last' });
    expect((await audit.list(10)).at(-1)).toMatchObject({ action: 'act0', params: null });
  });

  it.skipIf(skip !== null)('seeds: create with stages, stage moves, attempts, internals, finish, lists and counts', async () => {
    const { seeds } = await open();
    const base = { source: 'src', target: 'dst', method: 'cold' as const, compression: 'auto' as const, effectiveCompression: 'zstd' as const, startTarget: true, maxBytesPerSec: null, lanes: 2, bytesTotal: 5_000_000_000 };
    await seeds.create({ id: 'seed-1', ...base });
    await seeds.create({ id: 'seed-2', ...base, source: 'x', target: 'y', startTarget: false, maxBytesPerSec: 1_000_000, lanes: 1, bytesTotal: null });
    const fresh = (await seeds.get('seed-1'))!;
    expect(fresh).toMatchObject({ id: 'seed-1', state: 'running', stage: 'precheck', startTarget: true, lanes: 2, bytesTotal: 5_000_000_000, bytesDone: 0, attempts: 0, error: null, result: null });
    expect(fresh.stages.map((s) => [s.name, s.state])).toEqual(SEED_STAGES.map((stage) => [stage, 'pending']));
    await seeds.endStage('seed-1', 'precheck', 'succeeded', 'ok');
    await seeds.startStage('seed-1', 'transfer', 'going');
    await seeds.setStageMessage('seed-1', 'transfer', 'half');
    expect(await seeds.nextAttempt('seed-1')).toBe(1);
    expect(await seeds.nextAttempt('seed-1')).toBe(2);
    expect(await seeds.nextAttempt('seed-1')).toBe(3);
    await seeds.setProgress('seed-1', 4_000_000_000);
    await seeds.setSnapshotName('seed-1', 'snap');
    await seeds.setSourceStopped('seed-1', true);
    const transfer = { sent: { files: 1, bytes: 2, digest: 'd' }, received: { files: 1, bytes: 2, digest: 'd' } };
    await seeds.setTransfer('seed-1', transfer as never);
    expect(await seeds.internals('seed-1')).toEqual({ snapshotName: 'snap', sourceStopped: true, transfer, abortRequested: false });
    await seeds.requestAbort('seed-2');
    expect((await seeds.internals('seed-2')).abortRequested).toBe(true);
    const running = (await seeds.get('seed-1'))!;
    expect(running).toMatchObject({ stage: 'transfer', bytesDone: 4_000_000_000, attempts: 2 }); // 3 lane attempts over 2 lanes: 1 resume
    expect(running.stages.find((s) => s.name === 'transfer')).toMatchObject({ state: 'running', message: 'half' });
    expect(running.stages.find((s) => s.name === 'precheck')).toMatchObject({ state: 'succeeded', message: 'ok' });
    expect(await seeds.activeFor('dst')).toBe('seed-1');
    expect(await seeds.activeFor('y')).toBe('seed-2');
    await seeds.finish('seed-2', 'failed', { code: 'SEEDWIRE_CANCELED', message: 'no' }, null);
    expect(await seeds.activeFor('y')).toBeNull();
    expect((await seeds.listUnfinished()).map((s) => s.id)).toEqual(['seed-1']);
    expect((await seeds.list(10)).map((s) => s.id).sort()).toEqual(['seed-1', 'seed-2']);
    expect((await seeds.get('seed-2'))?.error).toEqual({ code: 'SEEDWIRE_CANCELED', message: 'no' });
    expect((await seeds.countByState()).sort((x, y) => x.state.localeCompare(y.state))).toEqual([
      { state: 'failed', n: 1 },
      { state: 'running', n: 1 },
    ]);
  });

  it.skipIf(skip !== null)('throughput: one series per seed, replaced on save', async () => {
    const { throughput } = await open();
    expect(await throughput.load('s')).toBeNull();
    await throughput.save('s', '{"a":1}');
    await throughput.save('s', '{"a":2}');
    expect(await throughput.load('s')).toBe('{"a":2}');
  });

  it.skipIf(skip !== null)('transaction: commits together, rolls back together, and keeps others out', async () => {
    const store = await open();
    await store.transaction(async (tx) => {
      await tx.operations.insert({ id: 'kept', agentId: 'a', op: 'hostname', params: {}, createdAt: AT, actor: 'admin' });
      await tx.audit.insert({ at: AT, actor: 'admin', agentId: 'a', action: 'op:hostname', params: null, outcome: 'started', message: null });
    });
    const outside: Array<Promise<unknown>> = [];
    await expect(
      store.transaction(async (tx) => {
        await tx.operations.insert({ id: 'gone', agentId: 'a', op: 'hostname', params: {}, createdAt: AT, actor: 'admin' });
        // A write of another caller meanwhile is not part of this transaction.
        outside.push(store.audit.insert({ at: AT, actor: 'other', agentId: null, action: 'x', params: null, outcome: 'ok', message: null }));
        await tx.audit.insert({ at: AT, actor: 'admin', agentId: 'a', action: 'op:hostname', params: null, outcome: 'started', message: null });
        throw new Error('undo');
      }),
    ).rejects.toThrow('undo');
    await Promise.all(outside);
    expect(await store.operations.get('gone')).toBeNull();
    expect(await store.operations.get('kept')).not.toBeNull();
    expect((await store.audit.list(10)).map((row) => row.actor)).toEqual(['other', 'admin']);
  });

  it.skipIf(skip !== null)('seed leases: created owned, claimed only when free, expired or already held; renewed, checked, released', async () => {
    const { seeds } = await open();
    const seed = { source: 'src', target: 'dst', method: 'cold', compression: 'auto', effectiveCompression: 'none', startTarget: true, maxBytesPerSec: null, lanes: 1, bytesTotal: 10 } as const;
    const a = { owner: 'ctl-a', ownerUrl: 'http://a:7070' };
    const b = { owner: 'ctl-b', ownerUrl: 'http://b:7070' };
    await seeds.create({ ...seed, id: 'owned' }, { ...a, leaseMs: 60_000 });
    await seeds.create({ ...seed, id: 'free' });
    const clock = await seeds.clock();
    expect(Math.abs(clock - Date.now())).toBeLessThan(60_000);
    expect((await seeds.lease('owned'))!.expiresAt).toBeGreaterThan(clock);
    expect(await seeds.lease('free')).toEqual({ owner: null, ownerUrl: null, expiresAt: null });
    expect(await seeds.claimable('ctl-b')).toEqual(['free']);
    expect(await seeds.claimable('ctl-a')).toEqual(['owned', 'free']);

    // A live lease of another owner is not taken; the owner's own claim just extends it.
    expect(await seeds.claimLease('owned', b, 60_000)).toBeNull();
    expect(await seeds.claimLease('owned', a, 60_000)).toMatchObject({ owner: 'ctl-a' });
    expect(await seeds.claimLease('free', b, 60_000)).toEqual({ owner: null, ownerUrl: null, expiresAt: null });

    // Renewal covers every unfinished seed of the owner in one statement, with abort requests.
    await seeds.requestAbort('free');
    expect(await seeds.renewLeases('ctl-b', 60_000)).toEqual([{ id: 'free', abortRequested: true }]);
    expect(await seeds.checkLease('owned', 'ctl-a', 60_000)).toEqual({ id: 'owned', abortRequested: false });
    expect(await seeds.checkLease('owned', 'ctl-b', 60_000)).toBeNull();

    // Expired (a lease of -1 ms ends before now): anyone may claim it, and then the old owner is fenced.
    await seeds.claimLease('owned', a, -1);
    expect(await seeds.claimable('ctl-b')).toEqual(['owned', 'free']);
    expect(await seeds.claimLease('owned', b, 60_000)).toMatchObject({ owner: 'ctl-a', ownerUrl: 'http://a:7070' });
    expect(await seeds.checkLease('owned', 'ctl-a', 60_000)).toBeNull();
    expect(await seeds.renewLeases('ctl-a', 60_000)).toEqual([]);

    // Released on a graceful stop: claimable at once. Finished seeds are never claimed.
    expect(await seeds.releaseLeases('ctl-b')).toBe(2);
    expect(await seeds.claimable('ctl-c')).toEqual(['owned', 'free']);
    await seeds.finish('free', 'aborted', null, null);
    expect(await seeds.claimLease('free', a, 60_000)).toBeNull();
    expect(await seeds.claimable('ctl-c')).toEqual(['owned']);
  });

  it.skipIf(skip !== null)('seed leases: of controllers claiming one expired lease together, exactly one wins (many rounds)', async () => {
    // On PostgreSQL three stores (a pool each) on one database, as three controllers have.
    const contenders = name === 'postgres' ? await openSharedPostgres(3) : [await open()];
    const store = contenders[0]!;
    const seed = { source: 'src', target: 'dst', method: 'cold', compression: 'auto', effectiveCompression: 'none', startTarget: true, maxBytesPerSec: null, lanes: 1, bytesTotal: 10 } as const;
    for (let round = 0; round < 40; round++) {
      const id = `race-${round}`;
      await store.seeds.create({ ...seed, id }, { owner: 'dead', ownerUrl: null, leaseMs: -1 });
      const claims = await Promise.all(
        Array.from({ length: 8 }, (_, i) => contenders[i % contenders.length]!.seeds.claimLease(id, { owner: `ctl-${i}`, ownerUrl: `http://c${i}:1` }, 60_000)),
      );
      const winners = claims.flatMap((claim, i) => (claim === null ? [] : [i]));
      expect(winners).toHaveLength(1);
      expect((await store.seeds.lease(id))!.owner).toBe(`ctl-${winners[0]}`);
    }
  });

  it.skipIf(skip !== null)('admin token: generated once, the same afterwards', async () => {
    const store = await open();
    const first = await store.adminToken.ensure();
    const again = await store.adminToken.ensure();
    expect(first.generated).toBe(true);
    expect(again).toMatchObject({ token: first.token, generated: false });
    expect(first.token.length).toBeGreaterThanOrEqual(32);
    await store.close();
    await store.close(); // idempotent
  });
});

// A small cap through the output logic, which is the same code over either engine.
describe('output cap over an executor', () => {
  it('keeps the head, one marker and the tail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'seedwire-contract-'));
    dirs.push(dir);
    const store = await openStore({ dataDir: dir, url: null });
    await store.operations.insert({ id: 'op', agentId: 'a', op: 'exec', params: {}, createdAt: AT, actor: 'admin' });
    await store.close();
    const db = openDatabase(dir);
    try {
      const output = createOutputStore(createSqliteExecutor(db), { capBytes: 10, tailBytes: 8 });
      expect((await output.append('op', 'stdout', '0123456789ABC')).seq).toBe(0);
      expect((await output.append('op', 'stderr', 'more')).seq).toBeNull();
      expect(await output.readText('op')).toBe(`0123456789${formatTruncation(0)}ABCmore`);
    } finally {
      db.close();
    }
  });
});

describe.skipIf(skipPostgres !== null)('PostgreSQL store: migrations', () => {
  it('controllers opening a fresh database together migrate it once', async () => {
    const url = await freshPostgresUrl();
    const opened = await Promise.all([openPostgresStore(url), openPostgresStore(url), openPostgresStore(url)]);
    stores.push(...opened);
    const name = new URL(url).pathname.slice(1);
    const rows = await server!.query<{ version: number; n: string }>(name, 'SELECT version, COUNT(*) AS n FROM schema_migrations GROUP BY version ORDER BY version');
    expect(rows.map((row) => [row.version, Number(row.n)])).toEqual(Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => [i + 1, 1]));
    // Reopened, the data is there and nothing is migrated again.
    await opened[0]!.agents.upsertOnHello({ id: 'a', hostname: 'h', datacenter: null, version: '1', capabilities: [], connectedAt: AT });
    const again = await openPostgresStore(url);
    stores.push(again);
    expect(await again.agents.count()).toBe(1);
  });

  it('refuses a database a newer release migrated, naming the versions and not the password', async () => {
    const url = await freshPostgresUrl();
    stores.push(await openPostgresStore(url));
    const name = new URL(url).pathname.slice(1);
    await server!.query(name, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from the future', $2)`, [PG_SCHEMA_VERSION + 1, AT]);
    const error = await openPostgresStore(url).then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(error?.code).toBe('SEEDWIRE_CONFIG');
    expect(error?.message).toContain(`schema version ${PG_SCHEMA_VERSION + 1} was written by a newer seedwire controller (this one knows up to ${PG_SCHEMA_VERSION})`);
    expect(error?.message).not.toContain('pg-test-secret');
  });

  it('says which server it could not reach, without the password', async () => {
    const url = server!.url('postgres').replace(/:(\d+)\//, ':1/');
    const error = await openPostgresStore(url).then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(error?.code).toBe('SEEDWIRE_CONFIG');
    expect(error?.message).toMatch(/store: cannot open postgres:\/\/seedwire:redacted@127\.0\.0\.1:1\/postgres/);
    expect(error?.message).not.toContain('pg-test-secret');
  });

  it('runs its prepared statements on after a newer release adds a column to a table they read', async () => {
    // One connection, so the statements prepared before the change are the ones used after it.
    const url = await freshPostgresUrl();
    const store = await openPostgresStore(url, { maxConnections: 1 });
    stores.push(store);
    const started = { at: AT, actor: 'admin', agentId: 'a', action: 'op:hostname', params: {}, outcome: 'started' as const, message: null };
    await store.operations.start({ id: 'op-1', agentId: 'a', op: 'hostname', params: {}, createdAt: AT, actor: 'admin' }, started);
    expect((await store.operations.get('op-1'))?.state).toBe('running');
    await server!.query(new URL(url).pathname.slice(1), 'ALTER TABLE operations ADD COLUMN from_a_later_release TEXT');
    // PostgreSQL refuses a cached plan whose result type changed ("cached plan must not change result type").
    expect((await store.operations.get('op-1'))?.state).toBe('running');
    const end = { state: 'succeeded' as const, endedAt: AT, result: { hostname: 'h' }, error: null, exitCode: null };
    expect((await store.operations.end('op-1', end, { at: AT, actor: 'admin', agentId: 'a', action: 'op:hostname', params: { operationId: 'op-1' } }))?.state).toBe('succeeded');
    const recorded = await store.operations.record({ id: 'op-2', agentId: 'a', op: 'hostname', params: {}, createdAt: AT, actor: 'admin' }, started, end, { at: AT, actor: 'admin', agentId: 'a', action: 'op:hostname', params: { operationId: 'op-2' } });
    expect(recorded.state).toBe('succeeded');
    expect((await store.audit.list(10)).length).toBe(4);
  });

  it('stops preparing statements, with one warning, when PostgreSQL loses them between calls (a pooler in transaction mode)', async () => {
    const pool = new pg.Pool({ connectionString: await freshPostgresUrl(), max: 1 });
    try {
      const warnings: string[] = [];
      const sql = createPgExecutor(pool, { info: () => undefined, warn: (message: unknown) => void warnings.push(String(message)) });
      const statement = prepared('SELECT 1 AS one');
      expect(await sql.get(statement)).toEqual({ one: 1 });
      // What such a pooler does: the next call lands on a server connection that never saw the statement.
      await pool.query('DEALLOCATE ALL');
      expect(await sql.get(statement)).toEqual({ one: 1 });
      await pool.query('DEALLOCATE ALL');
      expect(await sql.get(statement)).toEqual({ one: 1 });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('statements are no longer prepared');
    } finally {
      await pool.end();
    }
  });

  it('stores output with a NUL byte (PostgreSQL text cannot hold it: it becomes U+FFFD)', async () => {
    const store = await openPostgresStore(await freshPostgresUrl());
    stores.push(store);
    await store.operations.insert({ id: 'op', agentId: 'a', op: 'exec', params: {}, createdAt: AT, actor: 'admin' });
    await store.output.append('op', 'stdout', 'a\u0000b');
    expect(await store.output.readText('op')).toBe('a\uFFFDb');
  });
});
