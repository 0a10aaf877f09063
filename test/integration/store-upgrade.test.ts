/**
 * Upgrading a controller in place: the real controller process starts on a copy of the database
 * release 0.1.0 wrote (test/fixtures/README.md says how it was made) and its HTTP API shows every
 * agent, identity, operation with its output, audit row, seed with its stages and throughput
 * series as the old release stored them. The seed that release left `running` mid-transfer is
 * resumed and waits for its agents; one of them, started with the credential it enrolled with
 * under the old release, is admitted. test/unit/store-migrations.test.ts covers the migrations on
 * files alone.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { closeDatabase, openDatabase } from '../../server-stub/store/db.js';
import { SCHEMA_VERSION } from '../../server-stub/store/migrations.js';
import { makeTempDir, startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { describeSchema, FIXTURE_0_1_0, rowsOf } from '../helpers/sqlite-schema.js';

const AGENT_TOKEN = 'upgrade-enrollment-token';
const CREDENTIAL = FIXTURE_0_1_0.replace(/\.sqlite$/, '.src-credential.json');

type Row = Record<string, unknown>;
const json = (value: unknown): unknown => (typeof value === 'string' ? JSON.parse(value) : null);

/** What the old release stored, read straight from the fixture. */
function readFixture(): Record<'agents' | 'identities' | 'operations' | 'output' | 'audit' | 'seeds' | 'stages' | 'throughput', Row[]> {
  const db = new Database(FIXTURE_0_1_0, { readonly: true, fileMustExist: true });
  try {
    return {
      agents: rowsOf(db, 'agents', 'id'),
      identities: rowsOf(db, 'agent_identities', 'agent_id'),
      operations: rowsOf(db, 'operations'),
      output: rowsOf(db, 'operation_output', 'operation_id, seq'),
      audit: rowsOf(db, 'audit', 'id'),
      seeds: rowsOf(db, 'seeds'),
      stages: rowsOf(db, 'seed_stages', 'seed_id, ord'),
      throughput: rowsOf(db, 'seed_throughput', 'seed_id'),
    };
  } finally {
    db.close();
  }
}

/** A seed row of the old schema as the current API shows it. */
function seedView(seed: Row, stages: Row[]): Row {
  return {
    id: seed['id'],
    source: seed['source'],
    target: seed['target'],
    method: seed['method'],
    compression: seed['compression'],
    effectiveCompression: seed['effective_compression'],
    startTarget: seed['start_target'] === 1,
    maxBytesPerSec: seed['max_bytes_per_sec'],
    state: seed['state'],
    stage: seed['stage'],
    bytesTotal: seed['bytes_total'],
    bytesDone: seed['bytes_done'],
    createdAt: seed['created_at'],
    endedAt: seed['ended_at'],
    error: json(seed['error']),
    result: json(seed['result']),
    attempts: seed['attempts'],
    stages: stages
      .filter((s) => s['seed_id'] === seed['id'])
      .map((s) => ({ name: s['name'], state: s['state'], startedAt: s['started_at'], endedAt: s['ended_at'], message: s['message'] })),
  };
}

describe('a controller upgraded in place from release 0.1.0', () => {
  const fixture = readFixture();
  const running = fixture.seeds.find((s) => s['state'] === 'running')!;
  let dataDir: string;
  let controller: RunningController;

  async function get<T>(path: string): Promise<T> {
    const res = await controller.api('GET', path);
    expect(res.status, path).toBe(200);
    return (await res.json()) as T;
  }

  beforeAll(async () => {
    // What the fixture must hold for the checks below to mean anything.
    expect(fixture.seeds.map((s) => s['state'])).toEqual(['succeeded', 'failed', 'aborted', 'running']);
    expect(running['stage']).toBe('transfer');
    expect(running['bytes_done']).toBeGreaterThan(0);
    expect(fixture.output.length).toBeGreaterThan(0);
    expect(fixture.throughput.length).toBe(fixture.seeds.length);

    dataDir = mkdtempSync(join(tmpdir(), 'seedwire-upgrade-'));
    copyFileSync(FIXTURE_0_1_0, join(dataDir, 'seedwire.db'));
    controller = await startController({ agentToken: AGENT_TOKEN, dataDir });
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('migrates the database at start and says so', async () => {
    const migrated = await controller.waitForLog((r) => r.msg === 'database schema migrated');
    expect(migrated).toMatchObject({ from: 2, to: SCHEMA_VERSION });
  });

  it('shows every seed of the old release with its fields and stages', async () => {
    const seeds = await get<Row[]>('/api/seeds?limit=100');
    expect(seeds.map((s) => s['id']).sort()).toEqual(fixture.seeds.map((s) => s['id']).sort());
    for (const seed of fixture.seeds) {
      const shown = await get<Row>(`/api/seeds/${String(seed['id'])}`);
      const expected = seedView(seed, fixture.stages);
      if (seed === running) continue; // checked by the resume test: it moves on
      expect(shown).toMatchObject(expected);
      expect(shown['stages']).toEqual(expected['stages']);
    }
  });

  it("shows every seed's throughput series", async () => {
    for (const row of fixture.throughput) {
      const stored = json(row['series']) as { samples: unknown[]; marks: unknown[] };
      const shown = await get<{ samples: unknown[]; marks: Array<{ kind: string }> }>(`/api/seeds/${String(row['seed_id'])}/throughput`);
      if (row['seed_id'] === running['id']) {
        // The resumed seed's series continues from what was stored, marked with the restart.
        expect(shown.samples.slice(0, stored.samples.length)).toEqual(stored.samples);
        expect(shown.marks.slice(0, stored.marks.length)).toEqual(stored.marks);
        expect(shown.marks.at(-1)).toMatchObject({ kind: 'restart' });
      } else {
        expect(shown).toMatchObject(stored);
      }
    }
  });

  it('shows every operation with its fields and its output', async () => {
    const operations = await get<Row[]>('/api/operations?limit=1000');
    expect(operations.map((o) => o['id'])).toEqual(fixture.operations.map((o) => o['id']).reverse());
    for (const op of fixture.operations) {
      expect(operations.find((o) => o['id'] === op['id'])).toEqual({
        id: op['id'],
        agentId: op['agent_id'],
        op: op['op'],
        params: json(op['params']),
        state: op['state'],
        createdAt: op['created_at'],
        endedAt: op['ended_at'],
        result: json(op['result']),
        error: json(op['error']),
        exitCode: op['exit_code'],
        outputTail: op['output_tail'],
        actor: op['actor'],
        seedId: null,
      });
      const res = await controller.api('GET', `/api/operations/${String(op['id'])}/output?follow=0`);
      const text = fixture.output.filter((o) => o['operation_id'] === op['id']).map((o) => String(o['data'])).join('');
      expect(await res.text()).toBe(text);
    }
  });

  it('shows every audit row of the old release, followed by the resume', async () => {
    const audit = (await get<Row[]>('/api/audit?limit=10000')).reverse();
    expect(audit.slice(0, fixture.audit.length)).toEqual(
      fixture.audit.map((a) => ({ at: a['at'], actor: a['actor'], agentId: a['agent_id'], action: a['action'], params: json(a['params']), outcome: a['outcome'], message: a['message'] })),
    );
    expect(audit.slice(fixture.audit.length)).toContainEqual(expect.objectContaining({ actor: 'controller', action: 'seed.resume', params: { id: running['id'], stage: 'transfer' }, outcome: 'started' }));
  });

  it('shows every agent with its identity', async () => {
    const agents = await get<Row[]>('/api/agents');
    expect(agents.map((a) => a['id']).sort()).toEqual(fixture.agents.map((a) => a['id']).sort());
    for (const row of fixture.agents) {
      const identity = fixture.identities.find((i) => i['agent_id'] === row['id'])!;
      expect(agents.find((a) => a['id'] === row['id'])).toMatchObject({
        hostname: row['hostname'],
        datacenter: row['datacenter'],
        version: row['version'],
        capabilities: json(row['capabilities']),
        connected: false,
        identity: { state: identity['state'], method: identity['method'], enrolledAt: identity['enrolled_at'], revokedAt: identity['revoked_at'], readmittedAt: identity['readmitted_at'] },
      });
    }
  });

  it('resumes the running seed, which waits for its agents; the credential enrolled under the old release still admits its agent', async () => {
    await controller.waitForLog((r) => r.msg === 'resuming seed after restart' && r['seedId'] === running['id']);
    const expected = seedView(running, fixture.stages);
    const resumed = await get<Row & { stages: Row[] }>(`/api/seeds/${String(running['id'])}`);
    const { stages, ...fields } = expected as Row & { stages: Row[] };
    expect(resumed).toMatchObject({ ...fields, bytesDone: expect.any(Number) });
    expect(resumed['bytesDone']).toBeGreaterThanOrEqual(Number(running['bytes_done']));
    // The stages before the transfer stay done; the transfer runs again from when it first started.
    expect(resumed.stages.slice(0, 3)).toEqual(stages.slice(0, 3));
    expect(resumed.stages[3]).toMatchObject({ name: 'transfer', state: 'running', startedAt: stages[3]!['startedAt'] });
    expect(resumed.stages.slice(4)).toEqual(stages.slice(4));

    const stateDir = join(makeTempDir('seedwire-upgrade-agent-'), 'state');
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    copyFileSync(CREDENTIAL, join(stateDir, 'credential.json'));
    chmodSync(join(stateDir, 'credential.json'), 0o600);
    const src = startAgent({ controllerUrl: controller.wsUrl, token: AGENT_TOKEN, id: 'src', stateDir });
    await src.waitForLog((l) => l.msg === 'connected', { timeoutMs: 60_000 });
    await vi.waitFor(async () => expect(await get<Row>('/api/agents/src')).toMatchObject({ connected: true, identity: { state: 'enrolled', method: 'credential' } }), { timeout: 20_000 });
    expect(src.logs.items.some((l) => /^enrolled/.test(l.msg))).toBe(false); // admitted with the old credential, not enrolled anew

    // The target is still away: the seed keeps waiting at its transfer, it neither fails nor restarts.
    const waiting = await get<Row>(`/api/seeds/${String(running['id'])}`);
    expect(waiting).toMatchObject({ state: 'running', stage: 'transfer', attempts: running['attempts'] });
  });

  it('stops cleanly with the seed still running; the database then has the schema of a fresh one', async () => {
    expect(await controller.stop()).toBe(0);
    const db = new Database(join(dataDir, 'seedwire.db'), { readonly: true });
    const upgraded = describeSchema(db);
    expect(db.prepare('SELECT state, stage FROM seeds WHERE id = ?').get(running['id'])).toEqual({ state: 'running', stage: 'transfer' });
    db.close();
    const freshDir = makeTempDir('seedwire-fresh-db-');
    const fresh = openDatabase(freshDir);
    expect(upgraded).toEqual(describeSchema(fresh));
    expect(upgraded.userVersion).toBe(SCHEMA_VERSION);
    closeDatabase(fresh);

    // A second start migrates nothing and resumes the seed again.
    controller = await startController({ agentToken: AGENT_TOKEN, dataDir });
    await controller.waitForLog((r) => r.msg === 'resuming seed after restart' && r['seedId'] === running['id']);
    expect(controller.logs.some((r) => r.msg === 'database schema migrated')).toBe(false);
  });

  it('refuses to start on a database a newer release wrote, naming it', async () => {
    await controller.stop();
    const db = new Database(join(dataDir, 'seedwire.db'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    await expect(startController({ agentToken: AGENT_TOKEN, dataDir })).rejects.toThrow(
      new RegExp(`SEEDWIRE_CONFIG: .*seedwire\\.db: schema version ${SCHEMA_VERSION + 1} was written by a newer seedwire controller`),
    );
  });
});
