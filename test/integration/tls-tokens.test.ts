/**
 * Transport security with real processes: the controller serving https and wss from a certificate,
 * an agent trusting it through `tls.ca`, an agent that does not trust it, and per-agent tokens
 * (`--agent-tokens`) where a token only admits its own agent id.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';

const skip = missingTools(['openssl']);

describe.skipIf(skip)('TLS and per-agent tokens', () => {
  let dir: string;
  let controller: RunningController;
  let ca: string;

  /** GET /api/agents over https, trusting only our CA (fetch cannot take a CA on Node 20). */
  function agents(): Promise<Array<{ id: string; connected: boolean }>> {
    return new Promise((resolve, reject) => {
      const req = get(`${controller.url}/api/agents`, { ca: readFileSync(ca), headers: { authorization: `Bearer ${controller.adminToken}` } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(JSON.parse(body) as Array<{ id: string; connected: boolean }>));
      });
      req.on('error', reject);
    });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-tls-'));
    ca = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', ca, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const tokens = join(dir, 'tokens.json');
    writeFileSync(tokens, JSON.stringify({ 'db-a': 'token-a', 'db-b': 'token-b' }), { mode: 0o600 });
    controller = await startController({ agentToken: 'unused-shared', extraArgs: ['--tls-cert', ca, '--tls-key', key, '--agent-tokens', tokens] });
  });
  afterEach(async () => stopAllAgents());
  afterAll(async () => {
    await stopAllControllers();
    controller?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves https and wss; an agent trusting the CA connects and is listed', async () => {
    expect(controller.url).toMatch(/^https:\/\//);
    expect(controller.wsUrl).toMatch(/^wss:\/\//);
    startAgent({ controllerUrl: controller.wsUrl, token: 'token-a', id: 'db-a', config: { tls: { ca } } });
    await vi.waitFor(async () => expect((await agents()).find((a) => a.id === 'db-a')?.connected).toBe(true), { timeout: 20_000 });
  });

  it('an agent that does not trust the certificate does not connect, and says why', async () => {
    const agent = startAgent({ controllerUrl: controller.wsUrl, token: 'token-b', id: 'db-b' });
    await agent.waitForLog((l) => /certificate|self.signed|verify/i.test(JSON.stringify(l)), { timeoutMs: 15_000 });
    expect((await agents()).find((a) => a.id === 'db-b')).toBeUndefined();
  });

  it('tls.insecureSkipVerify lets an agent connect without the CA (for labs; it says so in the config)', async () => {
    await vi.waitFor(async () => expect((await agents()).find((a) => a.id === 'db-a')?.connected).toBe(false), { timeout: 20_000 });
    const lab = startAgent({ controllerUrl: controller.wsUrl, token: 'token-a', id: 'db-a', config: { tls: { insecureSkipVerify: true } } });
    await lab.waitForLog((l) => l.msg === 'connected', { timeoutMs: 15_000 });
    await vi.waitFor(async () => expect((await agents()).find((a) => a.id === 'db-a')?.connected).toBe(true), { timeout: 20_000 });
  });

  it("a per-agent token admits only its own agent id", async () => {
    const imposter = startAgent({ controllerUrl: controller.wsUrl, token: 'token-a', id: 'db-b', config: { tls: { ca } } });
    const refused = await imposter.waitForLog((l) => l.msg === 'controller refused the handshake', { timeoutMs: 15_000 });
    expect((refused as unknown as { code: string }).code).toBe('SEEDWIRE_AUTH');
    expect((await agents()).find((a) => a.id === 'db-b')).toBeUndefined();
    startAgent({ controllerUrl: controller.wsUrl, token: 'token-b', id: 'db-b', config: { tls: { ca } } });
    await vi.waitFor(async () => expect((await agents()).find((a) => a.id === 'db-b')?.connected).toBe(true), { timeout: 20_000 });
  });
});
