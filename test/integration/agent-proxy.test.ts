/**
 * The agent through a real HTTP CONNECT proxy (tinyproxy) on loopback: the `proxy` config key with
 * a credentials file, the environment variables (NO_PROXY included), wss through the tunnel to a
 * real TLS controller, and the failures: a proxy that wants other credentials (407), one that does
 * not admit this client (403), and one that goes away (the tunnel drops, then no proxy answers).
 * Each failure names the proxy and its status, and the agent keeps redialing with its backoff.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { startAgent, stopAllAgents, type LogLine } from '../helpers/agent.js';
import { startControllerSide, type ControllerSide } from '../helpers/agent-controller-side.js';
import { startController, stopAllControllers } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';
import { startTinyproxy, stopAllTinyproxies } from '../helpers/tinyproxy.js';

const TOKEN = 'proxy-test-token-71c';
const PASSWORD = 'pw-9d1e-never-logged';
const skip = missingTools(['tinyproxy', 'openssl']);

const peers: ControllerSide[] = [];
const dir = mkdtempSync(join(tmpdir(), 'sw-proxy-it-'));

async function startPeer(): Promise<ControllerSide> {
  const peer = await startControllerSide({ token: TOKEN });
  peers.push(peer);
  return peer;
}

function credentialsFile(content: string, name = 'proxy-credentials'): string {
  const file = join(dir, name);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

function refusal(line: LogLine): boolean {
  return line.msg === 'proxy refused the tunnel to the controller';
}

function errMessage(line: LogLine): string {
  return (line['err'] as { message: string; code: string }).message;
}

afterEach(async () => {
  await stopAllAgents();
  await stopAllTinyproxies();
  for (const peer of peers.splice(0)) await peer.close();
});
afterAll(async () => {
  await stopAllControllers();
  rmSync(dir, { recursive: true, force: true });
});

// Each test starts agents under tsx: on a loaded machine that alone can take half a minute.
describe.skipIf(skip)('agent through an HTTP CONNECT proxy (tinyproxy)', { timeout: 120_000 }, () => {
  it('proxy config key with a credentials file: connects through the tunnel, the password never in a log', async () => {
    const peer = await startPeer();
    const proxy = await startTinyproxy({ basicAuth: { user: 'agent', password: PASSWORD } });
    const agent = startAgent({
      controllerUrl: peer.url,
      token: TOKEN,
      id: 'px-config',
      config: { proxy: { url: proxy.url, credentialsFile: credentialsFile(`agent:${PASSWORD}\n`) } },
    });
    const conn = await peer.connections.waitFor(() => true, { timeoutMs: 30_000, what: 'a connection through the proxy' });
    await conn.waitFrame('hello');
    // The bearer travels inside the tunnel; the proxy's credentials stop at the proxy.
    expect(conn.request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(conn.request.headers['proxy-authorization']).toBeUndefined();
    await proxy.waitForLog(new RegExp(`CONNECT 127\\.0\\.0\\.1:${peer.port} `));
    await agent.waitForLog((l) => l.msg === 'connected');
    const starting = await agent.waitForLog((l) => l.msg === 'agent starting');
    expect(starting['proxy']).toEqual({ proxy: proxy.url, source: 'proxy.url', credentials: true });
    const hostname = 'c-host';
    conn.send({ t: 'call', id: hostname, op: 'hostname', params: {} });
    await conn.waitFrame('result', (f) => f.id === hostname);
    await agent.stop();
    const everything = JSON.stringify(agent.logs.items) + agent.stdoutText.join('\n') + agent.stderr();
    expect(everything).not.toContain(PASSWORD);
  });

  it("wrong credentials: the proxy's refusal named with its status, no connection, redials with backoff", async () => {
    const peer = await startPeer();
    const proxy = await startTinyproxy({ basicAuth: { user: 'agent', password: PASSWORD } });
    const agent = startAgent({
      controllerUrl: peer.url,
      token: TOKEN,
      id: 'px-407',
      config: { proxy: { url: proxy.url, credentialsFile: credentialsFile('agent:wrong-password\n', 'wrong') } },
    });
    const first = await agent.waitForLog(refusal, { timeoutMs: 30_000 });
    // tinyproxy answers wrong credentials with 401 (missing ones with 407, below): still the proxy's
    // word, so the agent's own credential is not touched
    expect(first['status']).toBe(401);
    expect((first['err'] as { code: string }).code).toBe('SEEDWIRE_PROXY');
    expect(errMessage(first)).toBe(`proxy ${proxy.url} refused the tunnel to 127.0.0.1:${peer.port}: 401 Unauthorized`);
    await agent.waitForLog((l) => l.msg === 'redialing controller');
    // the usual loop: another attempt, refused the same way
    await agent.logs.waitFor(refusal, { fromIndex: agent.logs.items.indexOf(first) + 1, timeoutMs: 30_000, what: 'a second refusal' });
    expect(peer.connections.items).toHaveLength(0);
    expect(agent.logs.items.some((l) => l.msg === 'controller refused the connection')).toBe(false);

    const without = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'px-407', config: { proxy: { url: proxy.url } } });
    const missing = await without.waitForLog(refusal, { timeoutMs: 30_000 });
    expect(errMessage(missing)).toBe(`proxy ${proxy.url} refused the tunnel to 127.0.0.1:${peer.port}: 407 Proxy Authentication Required`);
    expect(peer.connections.items).toHaveLength(0);
  });

  it('a proxy that does not admit this client: 403 named with the proxy', async () => {
    const peer = await startPeer();
    const proxy = await startTinyproxy({ allow: ['192.0.2.254'] });
    const agent = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'px-403', env: { HTTP_PROXY: proxy.url } });
    const refused = await agent.waitForLog(refusal, { timeoutMs: 30_000 });
    expect(refused['status']).toBe(403);
    expect(errMessage(refused)).toMatch(new RegExp(`^proxy ${proxy.url} refused the tunnel to 127\\.0\\.0\\.1:${peer.port}: 403`));
    expect(peer.connections.items).toHaveLength(0);
  });

  it('HTTP_PROXY with credentials in the URL for ws://; NO_PROXY naming the controller dials directly', async () => {
    const peer = await startPeer();
    const proxy = await startTinyproxy({ basicAuth: { user: 'env-user', password: PASSWORD } });
    const viaEnv = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'px-env', env: { HTTP_PROXY: `http://env-user:${PASSWORD}@127.0.0.1:${proxy.port}` } });
    await viaEnv.waitForLog((l) => l.msg === 'connected', { timeoutMs: 30_000 });
    expect((await viaEnv.waitForLog((l) => l.msg === 'agent starting'))['proxy']).toEqual({ proxy: proxy.url, source: 'HTTP_PROXY', credentials: true });
    const tunnels = proxy.logs.items.filter((l) => /Request .*CONNECT 127\.0\.0\.1/.test(l)).length;
    expect(tunnels).toBe(1);
    await viaEnv.stop();
    expect(JSON.stringify(viaEnv.logs.items) + viaEnv.stderr()).not.toContain(PASSWORD);

    const direct = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'px-noproxy', env: { HTTP_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' } });
    await direct.waitForLog((l) => l.msg === 'connected', { timeoutMs: 30_000 });
    expect((await direct.waitForLog((l) => l.msg === 'agent starting'))['proxy']).toBeNull();
    expect(proxy.logs.items.filter((l) => /Request .*CONNECT 127\.0\.0\.1/.test(l))).toHaveLength(tunnels);
  });

  it('HTTPS_PROXY for wss://: TLS to the controller runs inside the tunnel', async () => {
    const ca = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', ca, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const controller = await startController({ agentToken: TOKEN, extraArgs: ['--tls-cert', ca, '--tls-key', key] });
    try {
      const proxy = await startTinyproxy();
      const agent = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'px-wss', config: { tls: { ca } }, env: { HTTPS_PROXY: proxy.url } });
      await agent.waitForLog((l) => l.msg === 'connected', { timeoutMs: 30_000 });
      await proxy.waitForLog(new RegExp(`CONNECT 127\\.0\\.0\\.1:${new URL(controller.url).port} `));
      const listed = (): Promise<Array<{ id: string; connected: boolean }>> =>
        new Promise((resolve, reject) => {
          get(`${controller.url}/api/agents`, { ca: readFileSync(ca), headers: { authorization: `Bearer ${controller.adminToken}` } }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve(JSON.parse(body) as Array<{ id: string; connected: boolean }>));
          }).on('error', reject);
        });
      await vi.waitFor(async () => expect((await listed()).find((a) => a.id === 'px-wss')?.connected).toBe(true), { timeout: 10_000 });
    } finally {
      await controller.stop();
      controller.cleanup();
    }
  });

  it('the proxy goes away: the tunnel drops, dials fail naming the proxy, and the agent is back once it returns', async () => {
    const peer = await startPeer();
    const proxy = await startTinyproxy();
    const agent = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'px-drop', config: { proxy: { url: proxy.url } } });
    const first = await peer.connections.waitFor(() => true, { timeoutMs: 30_000, what: 'the first connection' });
    await first.waitFrame('hello');
    await proxy.stop();
    await first.closed;
    await agent.waitForLog((l) => l.msg === 'disconnected', { timeoutMs: 30_000 });
    const failed = await agent.waitForLog((l) => l.msg === 'dial through the proxy failed', { timeoutMs: 30_000 });
    expect(errMessage(failed)).toMatch(new RegExp(`^cannot open a tunnel through proxy ${proxy.url} to 127\\.0\\.0\\.1:${peer.port}: .*ECONNREFUSED`));
    const back = await startTinyproxy({ port: proxy.port });
    const second = await peer.connections.waitFor((c) => c !== first, { timeoutMs: 30_000, what: 'a connection after the proxy came back' });
    await second.waitFrame('hello');
    await back.waitForLog(/CONNECT 127\.0\.0\.1/);
  });
});
