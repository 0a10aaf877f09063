/**
 * Bounded exposure of the agent endpoint, against a real controller (in-process, port 0) whose pino
 * JSON is parsed: failed authentications rate-limited per address with few log lines, connections
 * without a hello capped and timed out; and mutual TLS, where the client certificate names the agent.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { createController, type Controller, type CreateControllerOptions } from '../../server-stub/app.js';
import type { ErrorFrame } from '../../shared/frames.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { TestPeer } from '../helpers/controller-peer.js';
import { missingTools } from '../helpers/requirements.js';

const ENROLLMENT_TOKEN = 'exposure-enrollment-token-0123456789';
const ADMIN_TOKEN = 'exposure-admin-token-0123456789';

let controller: Controller | null = null;
let dataDir: string | null = null;
let logs: Array<Record<string, unknown>> = [];
const peers: TestPeer[] = [];

async function start(options: Partial<CreateControllerOptions> = {}): Promise<Controller> {
  dataDir = mkdtempSync(join(tmpdir(), 'sw-exposure-'));
  logs = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: ENROLLMENT_TOKEN, log: pino({ level: 'info' }, sink), ...options });
  return controller;
}

function peer(options: Partial<ConstructorParameters<typeof TestPeer>[0]>): TestPeer {
  const p = new TestPeer({ url: controller!.wsUrl, token: ENROLLMENT_TOKEN, ...options });
  peers.push(p);
  return p;
}

/** One upgrade attempt: 101 or the refusal's status and Retry-After. */
function upgrade(url: string, token: string): Promise<{ status: number; retryAfter: string | null }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101, retryAfter: null });
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, retryAfter: (res.headers['retry-after'] as string | undefined) ?? null });
      res.resume();
      ws.terminate();
    });
    ws.on('error', (error) => {
      if (!/closed before the connection/.test(error.message)) reject(error);
    });
  });
}

/** GET /api/agents/:id's identity ('unenrolled' for an id the controller never listed). */
async function identityOf(c: Controller, agentId: string): Promise<{ state: string; method?: string | null }> {
  const res = await c.app.inject({ method: 'GET', url: `/api/agents/${agentId}`, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  if (res.statusCode === 404) return { state: 'unenrolled' };
  return (res.json() as { identity: { state: string; method: string | null } }).identity;
}

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await stopAllAgents();
  await controller?.close();
  controller = null;
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  dataDir = null;
});

describe('failed authentications', () => {
  it('300 bad-token upgrades: 401 then 429 with Retry-After, and a bounded number of log lines', async () => {
    const c = await start({ exposure: { authFailureLimit: 5, authFailureWindowMs: 60_000, refusalLogIntervalMs: 60_000 } });
    // Enrolled before the flood, from the same address.
    const credentials = new Map<string, string>();
    await peer({ agentId: 'db-1', credentials }).connect();
    const linesBefore = logs.length;

    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let batch = 0; batch < 10; batch++) {
      const answers = await Promise.all(Array.from({ length: 30 }, () => upgrade(c.wsUrl, 'not-the-token')));
      for (const answer of answers) {
        statuses.push(answer.status);
        retryAfter ??= answer.retryAfter;
      }
    }
    expect(statuses).toHaveLength(300);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(30); // at most the first batch raced past the limit
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(270);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);

    // A limited address: the enrollment token waits too, an enrolled credential still connects.
    expect((await upgrade(c.wsUrl, ENROLLMENT_TOKEN)).status).toBe(429);
    const back = peer({ agentId: 'db-1', credentials });
    await back.connect();
    expect(c.deps.hub.isConnected('db-1')).toBe(true);

    await c.close(); // flushes the summary of the interval
    controller = null;
    const flood = logs.slice(linesBefore).filter((r) => r['msg'] === 'agent connections refused');
    expect(flood.length).toBeGreaterThanOrEqual(1);
    expect(flood.length).toBeLessThanOrEqual(2);
    expect(flood.reduce((n, r) => n + Number(r['total']), 0)).toBe(301);
    expect(flood.at(-1)).toMatchObject({ level: 40, addresses: [expect.objectContaining({ address: expect.stringMatching(/127\.0\.0\.1/) })] });
    // Nothing else was logged per attempt either.
    expect(logs.slice(linesBefore).filter((r) => Number(r['level']) >= 40).length).toBeLessThanOrEqual(2);
    expect(JSON.stringify(logs)).not.toContain('not-the-token');
  });
});

describe('unconfirmed enrollments behind one address', () => {
  it('credentials the controller never committed are refused (401) without locking the address out of enrolling', async () => {
    const c = await start({ exposure: { authFailureLimit: 5, authFailureWindowMs: 60_000, refusalLogIntervalMs: 60_000 } });
    // Agents whose 'enrolled' never arrived each present the credential they stored: 4× the limit.
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => upgrade(c.wsUrl, `swc_${String(i).padStart(43, 'x')}`)));
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 401));
    // Each falls back to the enrollment token, which still works from this address.
    expect((await upgrade(c.wsUrl, ENROLLMENT_TOKEN)).status).toBe(101);
    await peer({ agentId: 'db-stale' }).connect();
    expect(c.deps.hub.isConnected('db-stale')).toBe(true);
    // A wrong token of another shape still counts.
    for (let i = 0; i < 5; i++) expect((await upgrade(c.wsUrl, 'not-the-token')).status).toBe(401);
    expect((await upgrade(c.wsUrl, ENROLLMENT_TOKEN)).status).toBe(429);
    await c.close();
    controller = null;
    const summaries = logs.filter((r) => r['msg'] === 'agent connections refused').map((r) => r['refused'] as Record<string, number>);
    expect(summaries.reduce((n, refused) => n + (refused['unknown-credential'] ?? 0), 0)).toBe(20);
  });
});

describe('connections without a hello', () => {
  it('are capped (503 beyond the cap) and closed after the hello timeout', async () => {
    const c = await start({ handshakeTimeoutMs: 1_000, exposure: { maxPendingHandshakes: 2 } });
    const silent = [peer({ agentId: 'quiet-1' }), peer({ agentId: 'quiet-2' })];
    await Promise.all(silent.map((p) => p.opened()));
    const third = await upgrade(c.wsUrl, ENROLLMENT_TOKEN);
    expect(third).toEqual({ status: 503, retryAfter: '1' });
    for (const p of silent) expect((await p.closed).code).toBe(4002);
    // The slots are free again.
    await peer({ agentId: 'db-after' }).connect();
  });

  it('an enrollment that is never confirmed is closed after the hello timeout too', async () => {
    const c = await start({ handshakeTimeoutMs: 1_000 });
    const stalled = peer({ agentId: 'db-stall', autoEnroll: false });
    await stalled.opened();
    stalled.hello();
    await stalled.next((f) => f.t === 'enroll');
    expect((await stalled.closed).code).toBe(4002);
    expect((await identityOf(c, 'db-stall')).state).toBe('unenrolled');
  });
});

const noOpenssl = missingTools(['openssl']);

describe.skipIf(noOpenssl)('mutual TLS', () => {
  let dir: string;
  const file = (name: string): string => join(dir, name);
  const read = (name: string): Buffer => readFileSync(file(name));

  function makeCa(name: string): void {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2', '-subj', `/CN=${name}`], { stdio: 'ignore' });
  }
  function makeCert(ca: string, name: string, subject: string, extensions: string): void {
    execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', subject], { stdio: 'ignore' });
    execFileSync('bash', ['-c', `printf '%s\\n' "${extensions}" > ${file(`${name}.ext`)}`]);
    execFileSync('openssl', ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '2', '-extfile', file(`${name}.ext`)], { stdio: 'ignore' });
  }

  async function startTls(): Promise<Controller> {
    dir = mkdtempSync(join(tmpdir(), 'sw-mtls-'));
    makeCa('ca');
    makeCa('rogue-ca');
    makeCert('ca', 'server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1');
    makeCert('ca', 'db-cert', '/CN=db-cert', 'subjectAltName=DNS:db-cert.example');
    makeCert('rogue-ca', 'rogue', '/CN=db-cert', 'subjectAltName=DNS:db-cert');
    return start({ tls: { cert: read('server.pem'), key: read('server.key'), clientCa: read('ca.pem') } });
  }

  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the agent id comes from the verified certificate; a mismatching hello or an untrusted certificate is refused; tokens still work', async () => {
    const c = await startTls();
    expect(c.wsUrl).toMatch(/^wss:/);
    const ca = read('ca.pem');
    const certified = peer({ token: undefined, agentId: 'db-cert', tls: { ca, cert: read('db-cert.pem'), key: read('db-cert.key') } });
    await certified.connect();
    expect(certified.frames.some((f) => f.t === 'enroll')).toBe(false);
    expect(await identityOf(c, 'db-cert')).toMatchObject({ state: 'enrolled', method: 'certificate' });

    const mismatch = peer({ token: undefined, agentId: 'db-other', tls: { ca, cert: read('db-cert.pem'), key: read('db-cert.key') } });
    await mismatch.opened();
    mismatch.hello();
    expect((await mismatch.next<ErrorFrame>((f) => f.t === 'error')).message).toMatch(/client certificate belongs to agent db-cert/);
    expect((await mismatch.closed).code).toBe(1008);

    // The certificate wins over a bearer token naming nobody in particular.
    const rogue = peer({ agentId: 'db-cert', tls: { ca, cert: read('rogue.pem'), key: read('rogue.key') } });
    await expect(rogue.opened()).rejects.toMatchObject({ status: 401 });

    // The enrollment token cannot claim an id a certificate holds; without a certificate tokens still work.
    const claim = peer({ agentId: 'db-cert', tls: { ca } });
    await claim.opened();
    claim.hello();
    expect((await claim.closed).code).toBe(4005);
    await peer({ agentId: 'db-token', tls: { ca } }).connect();
    expect(c.deps.hub.isConnected('db-cert')).toBe(true);
  });

  it('a real agent with tls.cert/tls.key and no token connects as the certificate id', async () => {
    const c = await startTls();
    const agent = startAgent({
      controllerUrl: c.wsUrl,
      token: ENROLLMENT_TOKEN,
      id: 'db-cert',
      config: { token: undefined, tls: { ca: file('ca.pem'), cert: file('db-cert.pem'), key: file('db-cert.key') } },
    });
    await agent.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
    await vi.waitFor(() => expect(c.deps.hub.isConnected('db-cert')).toBe(true), { timeout: 15_000 });
    expect(agent.logs.items.some((l) => /^enrolled/.test(l.msg))).toBe(false);
  });
});
