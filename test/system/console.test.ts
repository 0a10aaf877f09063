/**
 * The web console in a real Chromium against the real controller (createController with the
 * console plugin) and real agent processes. Nothing stands in for the API: the console is under
 * test, the controller and agents are its environment.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import { CONSOLE_CSP, registerConsoleRoutes } from '../../server-stub/console-routes.js';
import { makeTempDir, PROJECT_ROOT, startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { chromiumMissingReason, fillNewSeedForm, launchBrowser, loginThroughForm, type BrowserSession } from '../helpers/browser.js';

const ADMIN_TOKEN = 'console-admin-token-0123456789';

/** A mysql config section whose service is a state file (running while `dir/running` exists). */
function fakeMysql(dir: string): Record<string, unknown> {
  const datadir = join(dir, 'data');
  mkdirSync(datadir, { recursive: true });
  writeFileSync(join(datadir, 'ibdata1'), 'x'.repeat(4096));
  writeFileSync(join(dir, 'running'), '');
  return { datadir, startCommand: `touch '${dir}/running'`, stopCommand: `rm -f '${dir}/running'`, statusCommand: `test -e '${dir}/running'` };
}
const AGENT_TOKEN = 'console-agent-token-0123456789';
const CI = process.env['CI'] === 'true';
const missing = chromiumMissingReason();

if (missing !== null) {
  if (CI) {
    it('console system tests need Chromium', () => {
      throw new Error(`${missing}: required in CI`);
    });
  } else {
    console.warn(`[console.test] SKIPPED: ${missing}`);
  }
}

describe.skipIf(missing !== null)('web console (Chromium, real controller and agents)', () => {
  let consoleDir: string;
  let dataDir: string;
  let workDir: string;
  let controller: Controller | null = null;
  let port = 0;
  let baseUrl = '';
  let browser: BrowserSession | null = null;
  const agents: AgentProcess[] = [];

  async function startTheController(adminToken = ADMIN_TOKEN): Promise<Controller> {
    const started = await createController({
      dataDir,
      adminToken,
      agentToken: AGENT_TOKEN,
      port,
      // Generous on purpose: the browser, the controller and three agents share two cores here.
      heartbeatMs: 1_000,
      deadAfterMs: 10_000,
      drainMs: 3_000,
      plugins: [(app) => registerConsoleRoutes(app, { dir: consoleDir })],
    });
    port = new URL(started.url).port === '' ? 80 : Number(new URL(started.url).port);
    baseUrl = started.url;
    return started;
  }

  async function waitForAgents(c: Controller, ids: string[]): Promise<void> {
    await Promise.all(ids.map((id) => c.deps.hub.waitForAgent(id, AbortSignal.timeout(30_000))));
  }

  beforeAll(async () => {
    workDir = makeTempDir('seedwire-console-');
    consoleDir = join(workDir, 'console');
    dataDir = join(workDir, 'controller');
    await promisify(execFile)(process.execPath, ['scripts/build-console.mjs', '--outdir', consoleDir], { cwd: PROJECT_ROOT });
    controller = await startTheController();
    const release = join(workDir, 'release');
    const common = { controllerUrl: controller.wsUrl, token: AGENT_TOKEN };
    agents.push(
      startAgent({
        ...common,
        id: 'db-1',
        config: {
          datacenter: 'dc1',
          customCommands: {
            // Prints a first line, then waits until the test creates the release file.
            'two-lines': `echo first-line; while [ ! -e '${release}' ]; do sleep 0.05; done; echo last-line`,
            hello: 'echo hello from db-1',
            blocker: 'echo blocking; while true; do sleep 0.05; done',
          },
        },
      }),
      // MySQL "service" driven by a state file: the console's start/stop path without a server.
      startAgent({ ...common, id: 'db-2', config: { datacenter: 'dc1', mysql: fakeMysql(join(workDir, 'db-2')) } }),
      startAgent({ ...common, id: 'db-3', config: { datacenter: 'dc2' } }),
    );
    await waitForAgents(controller, ['db-1', 'db-2', 'db-3']);
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await stopAllAgents();
    await controller?.close();
  });

  it('serves the console with a strict CSP, no-cache, and no path escapes', async () => {
    const index = await fetch(`${baseUrl}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const app = await fetch(`${baseUrl}/console/app.js`);
    expect(app.status).toBe(200);
    expect(app.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await fetch(`${baseUrl}/console/style.css`)).headers.get('content-type')).toMatch(/^text\/css/);
    expect((await fetch(`${baseUrl}/console/%2e%2e/%2e%2e/package.json`)).status).toBe(404);
    // The API stays protected even though the page is not.
    expect((await fetch(`${baseUrl}/api/agents`)).status).toBe(401);
  });

  it('answers 503 "console not built" when the bundle is missing', async () => {
    const app = Fastify();
    try {
      await registerConsoleRoutes(app, { dir: join(workDir, 'not-built') });
      const reply = await app.inject({ method: 'GET', url: '/' });
      expect(reply.statusCode).toBe(503);
      expect(reply.body).toContain('console not built: run npm run build');
    } finally {
      await app.close();
    }
  });

  it('refuses a wrong token, logs in with the right one and lists the agents', async () => {
    const { page } = browser!;
    await page.goto(`${baseUrl}/#/agents`);
    // Not logged in: the API answers 401 and the console shows Login.
    await page.getByTestId('view-login').waitFor();
    await page.getByTestId('login-token').fill('wrong-token');
    await page.getByTestId('login-submit').click();
    await expect.poll(() => page.getByTestId('login-error').textContent()).toContain('Wrong token');
    expect(page.url()).not.toContain('wrong-token');

    await page.getByTestId('login-token').fill(ADMIN_TOKEN);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('agent-row-db-1').waitFor();
    expect(page.url()).not.toContain(ADMIN_TOKEN);
    for (const id of ['db-1', 'db-2', 'db-3']) {
      await expect.poll(() => page.getByTestId(`agent-connected-${id}`).textContent()).toBe('connected');
    }
    expect(await page.getByTestId('agent-row-db-3').textContent()).toContain('dc2');
    // Nothing but the HttpOnly cookie holds the session.
    // (Expressions as strings: they run in the page, whose DOM types this Node project lacks.)
    const storage: unknown = await page.evaluate('({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie })');
    expect(storage).toEqual({ local: 0, session: 0, cookie: '' });
    await browser!.screenshot('agents');
  });

  it('shows an agent page and streams a custom command’s output live', async () => {
    const { page } = browser!;
    await page.getByTestId('agent-link-db-1').click();
    await page.getByTestId('view-agent').waitFor();
    await expect.poll(() => page.getByTestId('peers-local').textContent()).toContain('db-2');
    expect(await page.getByTestId('peers-remote').textContent()).toContain('db-3');

    await page.getByTestId('custom-command-select').selectOption('two-lines');
    await page.getByTestId('custom-command-run').click();
    // The first line shows while the command still runs (it waits for the release file).
    await expect.poll(() => page.getByTestId('op-output').textContent(), { timeout: 15_000 }).toContain('first-line');
    expect(await page.getByTestId('custom-command-op-state').textContent()).toBe('running');
    await browser!.screenshot('agent-command-running');

    writeFileSync(join(workDir, 'release'), '');
    await expect.poll(() => page.getByTestId('op-output').textContent(), { timeout: 15_000 }).toContain('last-line');
    await expect.poll(() => page.getByTestId('custom-command-op-state').textContent()).toBe('succeeded');
    expect(await page.getByTestId('agent-operations').textContent()).toContain('custom-command');
    await browser!.screenshot('agent-command-done');
  });

  it('lists operations and shows one with its output', async () => {
    const { page } = browser!;
    await page.getByTestId('nav-operations').click();
    const row = page.locator('[data-testid^="op-row-"]', { hasText: 'two-lines' }).first();
    await row.waitFor();
    await row.getByRole('link', { name: 'custom-command' }).click();
    await page.getByTestId('view-operation').waitFor();
    await expect.poll(() => page.getByTestId('op-state').textContent()).toBe('succeeded');
    await expect.poll(() => page.getByTestId('op-output').textContent()).toContain('first-line\nlast-line');
    await browser!.screenshot('operation');
  });

  it('shows the audit log, newest first, live', async () => {
    const { page } = browser!;
    await page.getByTestId('nav-audit').click();
    await page.getByTestId('audit-row').first().waitFor();
    const before = await page.getByTestId('audit-row').count();
    // An audited action from outside the browser appears without a reload.
    const res = await fetch(`${baseUrl}/api/agents/db-2/ops/hostname`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{"params":{}}' });
    expect(res.status).toBe(200);
    await expect.poll(() => page.getByTestId('audit-row').count()).toBeGreaterThan(before);
    expect(await page.getByTestId('audit-table').textContent()).toContain('db-2');
    await browser!.screenshot('audit');
  });

  it('cancels a running operation from its page after confirming', async () => {
    const { page } = browser!;
    await page.goto(`${baseUrl}/#/agents/db-1`);
    await page.getByTestId('custom-command-select').selectOption('blocker');
    await page.getByTestId('custom-command-run').click();
    await expect.poll(() => page.getByTestId('op-output').textContent(), { timeout: 15_000 }).toContain('blocking');
    await page.getByTestId('command-operation-link').click();
    await page.getByTestId('view-operation').waitFor();
    await expect.poll(() => page.getByTestId('op-state').textContent()).toBe('running');
    await page.getByTestId('op-cancel').click();
    await expect.poll(() => page.getByTestId('confirm-message').textContent()).toContain('custom-command');
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('op-state').textContent(), { timeout: 15_000 }).toBe('canceled');
    expect(await page.getByTestId('op-cancel').isHidden()).toBe(true);
  });

  it('keeps an operation’s end that arrives while the page is still loading', async () => {
    const { page } = browser!;
    const headers = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const started = await fetch(`${baseUrl}/api/agents/db-1/ops/custom-command?wait=0`, { method: 'POST', headers, body: '{"params":{"name":"blocker"}}' });
    expect(started.status).toBe(202);
    const opId = ((await started.json()) as { operation: { id: string } }).operation.id;
    // The page's list is read while the operation runs, and handed to the page only after the
    // operation has ended and the page has shown that end from its live event.
    let fetched!: () => void;
    const listRead = new Promise<void>((resolve) => (fetched = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    await page.route(/\/api\/operations\?/, async (route) => {
      const response = await route.fetch();
      fetched();
      await released;
      await route.fulfill({ response });
    });
    try {
      await page.goto(`${baseUrl}/#/operations`);
      await page.getByTestId('view-operations').waitFor();
      await listRead;
      const cancel = await fetch(`${baseUrl}/api/operations/${encodeURIComponent(opId)}/cancel`, { method: 'POST', headers });
      expect(cancel.status).toBe(200);
      await expect.poll(() => page.getByTestId(`op-row-state-${opId}`).textContent(), { timeout: 15_000 }).toBe('canceled');
      release();
      // The held list (older operations, and this one as running) is shown...
      await page.locator('[data-testid^="op-row-"]', { hasText: 'two-lines' }).first().waitFor();
      // ...and the end the page saw live stays.
      expect(await page.getByTestId(`op-row-state-${opId}`).textContent()).toBe('canceled');
    } finally {
      release();
      await page.unroute(/\/api\/operations\?/);
    }
  });

  it('stops MySQL only after confirming, and starts it again', async (ctx) => {
    const capabilities = (await controller!.deps.hub.agent('db-2'))?.capabilities ?? [];
    if (!capabilities.includes('mysql-stop')) {
      if (CI) throw new Error('the agent offers no mysql-stop operation');
      ctx.skip('the agent does not offer mysql-start/stop yet');
    }
    const { page } = browser!;
    await page.goto(`${baseUrl}/#/agents/db-2`);
    await expect.poll(() => page.getByTestId('fact-mysql').textContent(), { timeout: 15_000 }).toBe('running');
    await page.getByTestId('mysql-stop').click();
    await expect.poll(() => page.getByTestId('confirm-message').textContent()).toContain('db-2');
    await page.getByTestId('confirm-cancel').click();
    await page.getByTestId('confirm-dialog').waitFor({ state: 'hidden' });
    expect(await page.getByTestId('fact-mysql').textContent()).toBe('running');

    await page.getByTestId('mysql-stop').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('action-status').textContent(), { timeout: 15_000 }).toBe('mysql-stop succeeded');
    await expect.poll(() => page.getByTestId('fact-mysql').textContent(), { timeout: 15_000 }).toBe('stopped');
    await browser!.screenshot('agent-mysql-stopped');
    await page.getByTestId('mysql-start').click();
    await expect.poll(() => page.getByTestId('fact-mysql').textContent(), { timeout: 15_000 }).toBe('running');
  });

  it('shows local and remote before confirming a new seed', async () => {
    const { page } = browser!;
    const local = await fillNewSeedForm(page, baseUrl, { source: 'db-1', target: 'db-2' });
    expect(local.locality).toBe('local');
    expect(local.text).toContain('local');
    const remote = await fillNewSeedForm(page, baseUrl, { source: 'db-1', target: 'db-3', compression: 'zstd' });
    expect(remote.locality).toBe('remote');
    await page.getByTestId('new-seed-submit').click();
    await expect.poll(() => page.getByTestId('confirm-message').textContent()).toContain('remote');
    await browser!.screenshot('new-seed-confirm');
    await page.getByTestId('confirm-cancel').click();
    await page.getByTestId('confirm-dialog').waitFor({ state: 'hidden' });
  });

  it('survives a controller restart without a reload', async () => {
    const { page } = browser!;
    await page.goto(`${baseUrl}/#/agents`);
    await page.getByTestId('agent-row-db-1').waitFor();
    await page.evaluate("window.seedwireMarker = 'same-page'");
    await expect(page.getByTestId('connection-banner').isHidden()).resolves.toBe(true);

    await controller!.close();
    controller = null;
    await page.getByTestId('connection-banner').waitFor({ state: 'visible', timeout: 15_000 });
    await browser!.screenshot('restart-reconnecting');

    controller = await startTheController();
    await waitForAgents(controller, ['db-1', 'db-2', 'db-3']);
    await page.getByTestId('connection-banner').waitFor({ state: 'hidden', timeout: 30_000 });
    for (const id of ['db-1', 'db-2', 'db-3']) {
      await expect.poll(() => page.getByTestId(`agent-connected-${id}`).textContent(), { timeout: 15_000 }).toBe('connected');
    }
    expect(await page.evaluate('window.seedwireMarker')).toBe('same-page');
    await browser!.screenshot('restart-recovered');
  });

  it('goes back to Login on logout and on 401', async () => {
    const { page } = browser!;
    await page.getByTestId('nav-logout').click();
    await page.getByTestId('view-login').waitFor();
    await page.goto(`${baseUrl}/#/seeds`);
    await page.getByTestId('view-login').waitFor();
    await loginThroughForm(page, baseUrl, ADMIN_TOKEN);
    // No script errors and no CSP violations in the whole session.
    expect(browser!.pageErrors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/i.test(e))).toEqual([]);
  });

  it('goes back to Login when the controller comes back with another admin token', async () => {
    const { page } = browser!;
    await page.goto(`${baseUrl}/#/audit`);
    await page.getByTestId('audit-row').first().waitFor();
    await controller!.close();
    controller = null;
    controller = await startTheController('a-rotated-admin-token-0123456789');
    // The event stream's reconnect now meets 401: the console drops the session view.
    await page.getByTestId('view-login').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('connection-banner').isHidden()).toBe(true);
    await loginThroughForm(page, baseUrl, 'a-rotated-admin-token-0123456789');
    await page.getByTestId('view-audit').waitFor();
  });
});
