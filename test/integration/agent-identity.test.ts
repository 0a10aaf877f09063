/**
 * Agent identity that cannot be borrowed, with a real controller (in-process, port 0), real agent
 * processes and protocol peers: enrollment, an impostor holding the enrollment token, revoke and
 * readmit, per-agent tokens, and what a restarted agent presents.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CREDENTIAL_FILE } from '../../agent/connection/identity.js';
import { createController, type Controller } from '../../server-stub/app.js';
import type { ErrorFrame, Frame } from '../../shared/frames.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { TestPeer } from '../helpers/controller-peer.js';

const ENROLLMENT_TOKEN = 'identity-enrollment-token-0123456789';
const ADMIN_TOKEN = 'identity-admin-token-0123456789';

let controller: Controller;
let dataDir: string;
let logs: Array<Record<string, unknown>>;
const peers: TestPeer[] = [];

function peer(options: Partial<ConstructorParameters<typeof TestPeer>[0]> = {}): TestPeer {
  const p = new TestPeer({ url: controller.wsUrl, token: ENROLLMENT_TOKEN, ...options });
  peers.push(p);
  return p;
}

async function api<T = Record<string, unknown>>(method: string, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${controller.url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return { status: res.status, body: (await res.json()) as T };
}

interface AgentJson {
  id: string;
  connected: boolean;
  identity: { state: string; method: string | null; revokedAt: string | null };
}

async function agent(id: string): Promise<AgentJson> {
  return (await api<AgentJson>('GET', `/api/agents/${id}`)).body;
}

async function audit(): Promise<Array<{ action: string; agentId: string | null; outcome: string; actor: string; message: string | null }>> {
  return (await api<Array<{ action: string; agentId: string | null; outcome: string; actor: string; message: string | null }>>('GET', '/api/audit?limit=200')).body;
}

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'sw-identity-'));
  logs = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  controller = await createController({
    dataDir,
    adminToken: ADMIN_TOKEN,
    agentToken: ENROLLMENT_TOKEN,
    agentTokens: { pinned: 'pinned-token-0123456789' },
    heartbeatMs: 500,
    deadAfterMs: 3_000,
    // A revoked agent redials fast in tests; its refusals must not rate-limit 127.0.0.1 before the
    // readmit (agent-exposure.test.ts tests the limit itself).
    exposure: { authFailureLimit: 1_000 },
    log: pino({ level: 'info' }, sink),
  });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await stopAllAgents();
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('enrollment', () => {
  it('a new id enrolls with the enrollment token; the agent keeps its credential (0600) and presents it after a restart', async () => {
    const first = startAgent({ controllerUrl: controller.wsUrl, token: ENROLLMENT_TOKEN, id: 'db-1' });
    await first.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
    await first.waitForLog((l) => /^enrolled/.test(l.msg));
    const file = join(first.stateDir, CREDENTIAL_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { credential } = JSON.parse(readFileSync(file, 'utf8')) as { credential: string };
    expect(credential).toMatch(/^swc_/);
    expect((await agent('db-1')).identity).toMatchObject({ state: 'enrolled', method: 'credential' });

    await first.stop();
    const again = startAgent({ controllerUrl: controller.wsUrl, token: ENROLLMENT_TOKEN, id: 'db-1', stateDir: first.stateDir });
    await again.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
    expect(again.logs.items.some((l) => /^enrolled/.test(l.msg))).toBe(false);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ credential });
    expect((await audit()).filter((e) => e.action === 'agent:enroll')).toHaveLength(1);
    // Neither the credential nor the enrollment token reaches any log.
    const everything = JSON.stringify(logs) + JSON.stringify(first.logs.items) + JSON.stringify(again.logs.items);
    expect(everything).not.toContain(credential);
    expect(everything).not.toContain(ENROLLMENT_TOKEN);
  });

  it('nothing is committed until the agent confirms it stored the credential', async () => {
    const crashing = peer({ agentId: 'db-2', autoEnroll: false });
    await crashing.opened();
    crashing.hello();
    await crashing.next((f) => f.t === 'enroll');
    await crashing.close(); // "crashed" before confirming
    expect((await agent('db-2').catch(() => null))?.identity?.state ?? 'unenrolled').toBe('unenrolled');
    const retry = peer({ agentId: 'db-2' });
    await retry.connect();
    expect(retry.credential).toMatch(/^swc_/);
    expect(retry.credential).not.toBe(crashing.credential);
    // The credential the crashed attempt was sent admits nothing.
    await expect(peer({ token: crashing.credential!, agentId: 'db-2' }).opened()).rejects.toMatchObject({ status: 401 });
  });
});

describe('an impostor holding the enrollment token', () => {
  it('cannot take an enrolled id: refused and audited, while the real agent stays connected and serving', async () => {
    const real = startAgent({ controllerUrl: controller.wsUrl, token: ENROLLMENT_TOKEN, id: 'target' });
    await real.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
    const before = await controller.deps.hub.agent('target');

    const impostor = peer({ agentId: 'target' });
    await impostor.opened();
    impostor.hello();
    const refusal = await impostor.next<ErrorFrame>((f) => f.t === 'error');
    expect(refusal.code).toBe('SEEDWIRE_AUTH');
    expect(refusal.message).toMatch(/already enrolled/);
    expect((await impostor.closed).code).toBe(4005);
    expect(impostor.frames.some((f: Frame) => f.t === 'enroll' || f.t === 'welcome' || f.t === 'call')).toBe(false);

    expect(await controller.deps.hub.agent('target')).toMatchObject({ connected: true, connectedAt: before?.connectedAt });
    expect(real.logs.items.filter((l) => l.msg === 'connected')).toHaveLength(1); // never superseded
    const op = await fetch(`${controller.url}/api/agents/target/ops/hostname`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(op.status).toBe(200);
    expect(await audit()).toEqual(expect.arrayContaining([expect.objectContaining({ action: 'agent:connect', agentId: 'target', outcome: 'refused', message: expect.stringMatching(/already enrolled/) })]));
  });

  it("cannot claim an id that has its own token (--agent-tokens), which its token still admits", async () => {
    const claim = peer({ agentId: 'pinned' });
    await claim.opened();
    claim.hello();
    expect((await claim.next<ErrorFrame>((f) => f.t === 'error')).message).toMatch(/has its own token/);
    expect((await claim.closed).code).toBe(4005);
    expect(claim.credential).toBeNull();
    const owner = peer({ token: 'pinned-token-0123456789', agentId: 'pinned' });
    await owner.connect();
    expect((await agent('pinned')).identity).toMatchObject({ state: 'enrolled', method: 'token' });
  });

  it('a credential may supersede its own older session; it cannot name another id', async () => {
    const credentials = new Map<string, string>();
    const first = peer({ agentId: 'db-3', credentials });
    await first.connect();
    const second = peer({ agentId: 'db-3', credentials });
    await second.connect();
    expect((await first.closed).code).toBe(4001);
    const other = peer({ agentId: 'db-4', token: credentials.get('db-3')! });
    await other.opened();
    other.hello();
    expect((await other.next<ErrorFrame>((f) => f.t === 'error')).message).toMatch(/belongs to agent db-3/);
    expect((await other.closed).code).toBe(1008);
  });
});

describe('revoke and readmit', () => {
  it('a revoked agent is disconnected and cannot reconnect; readmit lets it enroll again, once', async () => {
    const host = startAgent({ controllerUrl: controller.wsUrl, token: ENROLLMENT_TOKEN, id: 'db-5' });
    await host.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
    const oldCredential = (JSON.parse(readFileSync(join(host.stateDir, CREDENTIAL_FILE), 'utf8')) as { credential: string }).credential;

    const revoked = await api<{ identity: { state: string } }>('POST', '/api/agents/db-5/revoke');
    expect(revoked).toMatchObject({ status: 200, body: { identity: { state: 'revoked' } } });
    await vi.waitFor(() => expect(controller.deps.hub.isConnected('db-5')).toBe(false), { timeout: 15_000 });
    // It keeps trying: its credential is refused, and so is enrolling again.
    const refused = await host.waitForLog((l) => /refused this agent's credential/.test(l.msg), { timeoutMs: 15_000 });
    expect(refused).toMatchObject({ status: 401, code: 'SEEDWIRE_AUTH', refusal: expect.stringMatching(/revoked/) });
    await host.waitForLog((l) => l.msg === 'controller refused the handshake' && /revoked/.test(String(l['err'])), { timeoutMs: 15_000 });
    expect(controller.deps.hub.isConnected('db-5')).toBe(false);
    expect((await agent('db-5')).identity).toMatchObject({ state: 'revoked' });
    // The old credential is refused outright, from any client.
    await expect(peer({ token: oldCredential, agentId: 'db-5' }).opened()).rejects.toMatchObject({ status: 401 });
    expect((await api('POST', '/api/agents/db-5/revoke')).status).toBe(200); // idempotent
    expect((await api('POST', '/api/agents/nobody/revoke')).status).toBe(404);

    const readmitted = await api<{ identity: { state: string } }>('POST', '/api/agents/db-5/readmit');
    expect(readmitted).toMatchObject({ status: 200, body: { identity: { state: 'readmitted' } } });
    await vi.waitFor(() => expect(controller.deps.hub.isConnected('db-5')).toBe(true), { timeout: 20_000 });
    const newCredential = (JSON.parse(readFileSync(join(host.stateDir, CREDENTIAL_FILE), 'utf8')) as { credential: string }).credential;
    expect(newCredential).not.toBe(oldCredential);
    expect((await agent('db-5')).identity).toMatchObject({ state: 'enrolled', method: 'credential' });
    // Readmit was for one enrollment: the enrollment token cannot claim the id again.
    const late = peer({ agentId: 'db-5' });
    await late.opened();
    late.hello();
    expect((await late.closed).code).toBe(4005);
    expect((await api('POST', '/api/agents/db-5/readmit')).status).toBe(409); // not revoked

    const actions = (await audit()).filter((e) => e.actor === 'admin').map((e) => `${e.action} ${e.outcome}`);
    expect(actions).toEqual(expect.arrayContaining(['agent:revoke succeeded', 'agent:readmit succeeded', 'agent:readmit refused']));
  });
});
