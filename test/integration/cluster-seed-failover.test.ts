/**
 * A seed survives the loss of its controller (cluster mode): three real controller processes on one
 * real PostgreSQL and one real nats-server, two real agents whose `controller` lists all three. The
 * seed is started on controller 1, which holds both agents and so owns it; controller 1 is
 * SIGKILLed mid-transfer. The agents reconnect to the others, another controller adopts the seed
 * once its lease expired (well within 60 s), summons both agents if they are elsewhere, and the
 * seed resumes from the target's committed offsets, completes and verifies; the bytes sent twice
 * stay under two windows per lane. The "MySQL" service is a state file, the datadirs are
 * generated trees (as in seed-link-drop.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/nats.js';
import { missingPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { missingTools } from '../helpers/requirements.js';
import { resumedLanes, seedApi } from '../helpers/seed-api.js';
import { digestTree, serviceCommands } from '../helpers/tree.js';

const AGENT_TOKEN = 'failover-agent-token';
const ADMIN_TOKEN = 'failover-admin-token';
/** The receiver's window per lane (shared/limits.ts): a resume re-sends at most what was in flight. */
const WINDOW = 16 * 1024 * 1024;
const skip = missingTools(['nats-server']) ?? missingPostgres();

interface AuditRow {
  action: string;
  outcome: string;
  params: Record<string, unknown> | null;
}

describe.skipIf(skip !== null)('a seed survives the SIGKILL of the controller that owns it', () => {
  let dir: string;
  let nats: NatsServer;
  let pgServer: PostgresServer;
  const controllers: RunningController[] = [];
  let source: AgentProcess;
  let target: AgentProcess;
  /** The controller the test talks to: any of them answers for the shared store. */
  let current: RunningController;
  const { api, op, agentsReady, seedUntilDone } = seedApi(() => current);
  /** The controller an agent's latest session is on, from its own log. */
  const holderOf = (agent: AgentProcess): RunningController | undefined => controllers.find((c) => c.wsUrl === agent.logs.items.filter((l) => l.msg === 'connected').at(-1)?.['controller']);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-failover-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 6; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(4 * 1024 * 1024));
    writeFileSync(join(src, 'ibdata1'), randomBytes(1024 * 1024));
    mkdirSync(join(dir, 'dst'));
    writeFileSync(join(dir, 'src.running'), ''); // the source's "MySQL" runs: the cold seed stops it, and starts it again at the end

    [nats, pgServer] = await Promise.all([startNatsServer(), startPostgres()]);
    const store = await pgServer.createDatabase(`failover_${process.pid}`);
    for (let i = 0; i < 3; i++) {
      controllers.push(await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, env: { SEEDWIRE_STORE: store, SEEDWIRE_BUS: nats.url }, startTimeoutMs: 60_000 }));
    }
    current = controllers[0]!;
    const list = controllers.map((c) => c.wsUrl);
    // Both agents dial the first of their list: controller 1 holds them.
    source = startAgent({ controllerUrl: list[0]!, token: AGENT_TOKEN, id: 'src', config: { controller: list, mysql: { datadir: src, ...serviceCommands(join(dir, 'src.running')) } } });
    target = startAgent({ controllerUrl: list[0]!, token: AGENT_TOKEN, id: 'dst', config: { controller: list, mysql: { datadir: join(dir, 'dst'), ...serviceCommands(join(dir, 'dst.running')) } } });
    await agentsReady(['src', 'dst']);
  }, 180_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    for (const c of controllers) c.cleanup();
    await stopAllNatsServers();
    await pgServer?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('another controller adopts it within 60 s, summons its agents, resumes from the committed offsets and verifies', { timeout: 300_000 }, async () => {
    const [c1, c2] = controllers as [RunningController, RunningController, RunningController];
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', maxBytesPerSec: 4 * 1024 * 1024 });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const id = created.body.seed.id;
    const owner = readFileSync(join(c1.dataDir, 'controller-id'), 'utf8').trim();

    await vi.waitFor(
      async () => {
        const s = (await api<{ stage: string; bytesDone: number; bytesTotal: number }>('GET', `/api/seeds/${id}`)).body;
        expect(s.stage).toBe('transfer');
        expect(s.bytesDone / s.bytesTotal).toBeGreaterThan(0.3);
      },
      { timeout: 120_000, interval: 100 },
    );
    await c1.kill();
    const killedAt = Date.now();
    current = c2;

    // Adopted by one of the others, within 60 s of the kill.
    let adopt: AuditRow | undefined;
    await vi.waitFor(
      async () => {
        const audit = (await api<AuditRow[]>('GET', '/api/audit?limit=500')).body;
        adopt = audit.find((a) => a.action === 'seed.adopt' && a.params?.['id'] === id);
        expect(adopt).toBeDefined();
      },
      { timeout: 60_000, interval: 250 },
    );
    expect(Date.now() - killedAt).toBeLessThan(60_000);
    expect(adopt!.params).toMatchObject({ previousOwner: owner, previousOwnerUrl: c1.url });
    const adopter = controllers.find((c) => c.url === adopt!.params!['ownerUrl']);
    expect(adopter).toBeDefined();
    expect(adopter).not.toBe(c1);

    const seed = await seedUntilDone(id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.attempts).toBeGreaterThanOrEqual(2);
    expect(seed.stages.find((s) => s.name === 'verify')?.state).toBe('succeeded');

    // Both agents ended on the adopter (summoned there if they had reconnected elsewhere).
    const agents = (await (await adopter!.api('GET', '/api/agents')).json()) as Array<{ id: string; connected: boolean }>;
    expect(agents.filter((a) => a.connected).map((a) => a.id).sort()).toEqual(['dst', 'src']);
    for (const agent of [source, target]) {
      const connected = agent.logs.items.filter((l) => l.msg === 'connected');
      expect(connected.at(-1)?.['controller']).toBe(adopter!.wsUrl);
    }

    // Bytes sent twice, per lane: where its first send stopped minus where its next one started.
    const resumed = resumedLanes(source, id, seed.lanes);
    expect(resumed.length).toBeGreaterThan(0);
    for (const sends of resumed) {
      expect(sends[1]!.from).toBeGreaterThan(0);
      expect(sends[0]!.to - sends[1]!.from).toBeLessThan(2 * WINDOW);
    }
    expect(digestTree(join(dir, 'dst'))).toEqual(digestTree(join(dir, 'src')));
    expect(existsSync(join(dir, 'dst', INCOMPLETE_MARKER))).toBe(false);
    expect(existsSync(join(dir, 'dst.running'))).toBe(true);
    expect(existsSync(join(dir, 'src.running'))).toBe(true); // the adopter's cleanup-source started it again
    console.info(`adopted by controller ${controllers.indexOf(adopter!) + 1} after ${Math.round((Date.now() - killedAt) / 1000)} s (seed end); agents moved: ${[source, target].map((a) => a.logs.items.filter((l) => l.msg === 'moving to another controller as asked').length).join('/')}`);
  });

  it('a seed started on a controller that holds neither agent is owned there: it summons both, and their data connections dial it', { timeout: 300_000 }, async () => {
    const live = controllers.filter((c) => c.process.exitCode === null && c.process.signalCode === null);
    const holder = holderOf(source);
    expect(holder).toBeDefined();
    expect(holderOf(target)).toBe(holder);
    const other = live.find((c) => c !== holder)!;
    current = other;
    // The target's "MySQL" runs after the first seed: stop it (routed to the holder) so the precheck passes.
    expect((await op<{ running: boolean }>('dst', 'mysql-stop')).result.running).toBe(false);
    const moves = (agent: AgentProcess): number => agent.logs.items.filter((l) => l.msg === 'moving to another controller as asked').length;
    const movesBefore = [moves(source), moves(target)];

    // The controller the agents leave follows the seed on its own /api/events (the fleet's events).
    const sseAbort = new AbortController();
    const sse = await fetch(`${holder!.url}/api/events`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: sseAbort.signal });
    expect(sse.status).toBe(200);
    let sseText = '';
    const reading = (async () => {
      try {
        for await (const chunk of sse.body!) sseText += Buffer.from(chunk as Uint8Array).toString('utf8');
      } catch (error) {
        if (!sseAbort.signal.aborted) throw error;
      }
    })();
    const seedStatesSeen = (id: string): string[] =>
      sseText
        .split('\n\n')
        .filter((block) => block.includes('event: seed\n') && block.includes(`"id":"${id}"`))
        .map((block) => /"state":"([a-z]+)"/.exec(block)?.[1] ?? '?');

    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst' });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const seed = await seedUntilDone(created.body.seed.id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    try {
      await vi.waitFor(() => expect(seedStatesSeen(seed.id)).toContain('succeeded'), { timeout: 15_000, interval: 100 });
      expect(seedStatesSeen(seed.id)).toContain('running');
    } finally {
      sseAbort.abort();
      await reading;
    }
    expect([moves(source), moves(target)]).toEqual([movesBefore[0]! + 1, movesBefore[1]! + 1]);
    expect(holderOf(source)).toBe(other);
    expect(holderOf(target)).toBe(other);
    // The bytes went through the owner: its relay carried at least the whole copy.
    const metrics = await (await other.api('GET', '/metrics')).text();
    expect(Number(/^seedwire_relay_bytes_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(seed.result!.bytes);
    expect(digestTree(join(dir, 'dst'))).toEqual(digestTree(join(dir, 'src')));
  });
});
