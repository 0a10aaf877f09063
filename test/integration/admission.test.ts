/**
 * Admission pacing end to end: the controller in-process answers upgrades beyond its rate with
 * 503 + Retry-After, and the agent's real reconnect loop (agent/connection/link.ts) waits as
 * asked without escalating its backoff.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentIdentity } from '../../agent/connection/identity.js';
import { Link } from '../../agent/connection/link.js';
import { createController, type Controller } from '../../server-stub/app.js';
import { LIMITS } from '../../shared/limits.js';
import { TestPeer } from '../helpers/controller-peer.js';
import { Waitable, waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'admission-agent-token';
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startPacedController(minPerSecond: number): Promise<Controller> {
  const dataDir = mkdtempSync(join(tmpdir(), 'seedwire-admission-'));
  const controller = await createController({ dataDir, adminToken: 'admin', agentToken: AGENT_TOKEN, admission: { minPerSecond, fleetFraction: 0 } });
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  cleanups.push(() => controller.close());
  return controller;
}

/** A raw upgrade request: the status, headers and body the controller answers. */
function rawUpgrade(url: string, token: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url.replace(/^ws/, 'http'), {
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', authorization: `Bearer ${token}` },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, retryAfter: undefined, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('admission pacing', () => {
  it('admits at most the rate at once; the rest get 503 SEEDWIRE_BUSY with a Retry-After', async () => {
    const controller = await startPacedController(3);
    const peers = Array.from({ length: 10 }, (_, i) => new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId: `paced-${i}` }));
    cleanups.push(() => Promise.all(peers.map((p) => p.close())).then(() => undefined));
    const outcomes = await Promise.allSettled(peers.map((p) => p.opened()));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toMatchObject({ status: 503 });
    const refused = await rawUpgrade(controller.wsUrl, AGENT_TOKEN);
    expect(refused.status).toBe(503);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'SEEDWIRE_BUSY', message: expect.stringMatching(/retry after \d+ s/) } });
    // A wrong token is still a 401, and does not use up an admission slot.
    expect((await rawUpgrade(controller.wsUrl, 'wrong')).status).toBe(401);
    const metrics = await (await fetch(`${controller.url}/metrics`, { headers: { authorization: 'Bearer admin' } })).text();
    expect(metrics).toMatch(/seedwire_agent_upgrades_paced_total 8/);
    // README's metric for welcomes held back by pacing is exported (how many depends on timing).
    expect(metrics).toMatch(/^seedwire_agent_welcomes_held_total \d+$/m);
  });

  it('a welcome held back by pacing no longer counts toward the cap on pending handshakes', async () => {
    // Rate 1: two agents admitted in consecutive seconds, whose hellos then arrive together, are
    // welcomed a second apart. Counted as pending, a herd's held welcomes filled the cap and the
    // rest of the herd was refused SEEDWIRE_TOO_MANY_CONNECTIONS before admission saw it.
    const controller = await startPacedController(1);
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${controller.url}/metrics`, { headers: { authorization: 'Bearer admin' } })).text();
      const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      if (!line) throw new Error(`${name} is not in /metrics`);
      return Number(line[1]);
    };
    const first = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId: 'held-1' });
    cleanups.push(() => first.close());
    await first.opened();
    expect(await metric('seedwire_agent_handshakes_pending')).toBe(1);
    // The second is refused 503 until the next admission second: dial until it is upgraded.
    let second: TestPeer | undefined;
    await waitFor(
      async () => {
        const peer = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId: 'held-2' });
        cleanups.push(() => peer.close());
        try {
          await peer.opened();
          second = peer;
          return true;
        } catch (error) {
          if ((error as { status?: number }).status !== 503) throw error;
          return false;
        }
      },
      { intervalMs: 50, what: 'the second agent admitted in the next second' },
    );
    const peers = [first, second!];
    expect(await metric('seedwire_agent_handshakes_pending')).toBe(2);
    const got = [false, false];
    const welcomed = peers.map((peer, i) => peer.next((f) => f.t === 'welcome').then(() => (got[i] = true)));
    for (const peer of peers) peer.hello();
    await waitFor(async () => (await metric('seedwire_agent_welcomes_held_total')) === 1, { what: 'a welcome held back' });
    const pendingWhileHeld = await metric('seedwire_agent_handshakes_pending');
    // Read while the held one still waits (it is held about a second).
    expect(got.filter((welcomedYet) => !welcomedYet)).toHaveLength(1);
    expect(pendingWhileHeld).toBe(0);
    await Promise.all(welcomed);
  });

  it("the agent's reconnect loop waits out a Retry-After without escalating its backoff", async () => {
    // A controller stand-in that answers two upgrades 503 Retry-After: 1, then drops every later one.
    const attempts: number[] = [];
    const server: Server = createServer();
    server.on('upgrade', (_req, socket) => {
      attempts.push(performance.now());
      if (attempts.length <= 2) socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const records = new Waitable<{ msg: string; attempt?: number; retryAfterMs?: number; delayMs?: number }>();
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line.trim()) records.push(JSON.parse(line) as { msg: string });
        done();
      },
    });
    const stateDir = mkdtempSync(join(tmpdir(), 'sw-admission-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const link = new Link({
      controllers: [`ws://127.0.0.1:${(server.address() as AddressInfo).port}/agent`],
      socket: {},
      ca: undefined,
      identity: new AgentIdentity({ stateDir, agentId: 'paced', enrollmentToken: AGENT_TOKEN, log: pino({ level: 'silent' }) }),
      timing: { heartbeatMs: undefined, deadAfterMs: undefined, handshakeTimeoutMs: LIMITS.handshakeTimeoutMs, reconnectBaseMs: 50, reconnectCapMs: 5_000, reconnectHealthyMs: 60_000, startupJitterMs: 0, killGraceMs: 1_000 },
      log: pino({ level: 'info' }, sink),
      random: () => 0.5,
      handlers: {
        makeHello: () => {
          throw new Error('never welcomed in this test');
        },
        onSession: () => undefined,
        onFrame: () => undefined,
        onBinary: () => undefined,
        onSessionEnd: () => undefined,
      },
    });
    link.start();
    cleanups.push(() => link.stop());
    const redial = await records.waitFor((r) => r.msg === 'redialing controller', { timeoutMs: 15_000, what: 'a backoff redial' });
    const asked = records.items.filter((r) => r.msg === 'controller asked to retry later; redialing then');
    expect(asked).toHaveLength(2);
    for (const r of asked) {
      expect(r.retryAfterMs).toBe(1_000);
      expect(r.delayMs).toBeGreaterThanOrEqual(1_000);
    }
    // The first ordinary failure after two paced refusals is backoff attempt 1, not 3.
    expect(redial.attempt).toBe(1);
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(1_000);
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(1_000);
  });
});
