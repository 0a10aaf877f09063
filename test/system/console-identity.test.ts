/**
 * Revoke and readmit from the console's agent view, in a real Chromium against the real controller
 * and a real agent process: the identity state is shown, each action asks for confirmation, a
 * revoked agent goes offline and stays so, a readmitted one enrolls again and comes back.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import { registerConsoleRoutes } from '../../server-stub/console-routes.js';
import { makeTempDir, PROJECT_ROOT, startAgent, stopAllAgents } from '../helpers/agent.js';
import { chromiumMissingReason, launchBrowser, loginThroughForm, type BrowserSession } from '../helpers/browser.js';

const ADMIN_TOKEN = 'identity-console-admin-token-0123456789';
const AGENT_TOKEN = 'identity-console-agent-token-0123456789';
const CI = process.env['CI'] === 'true';
const missing = chromiumMissingReason();

if (missing !== null) {
  if (CI) {
    it('console identity tests need Chromium', () => {
      throw new Error(`${missing}: required in CI`);
    });
  } else {
    console.warn(`[console-identity.test] SKIPPED: ${missing}`);
  }
}

describe.skipIf(missing !== null)('console: agent identity (Chromium, real controller and agent)', () => {
  let controller: Controller | null = null;
  let browser: BrowserSession | null = null;

  beforeAll(async () => {
    const workDir = makeTempDir('seedwire-console-identity-');
    const consoleDir = join(workDir, 'console');
    await promisify(execFile)(process.execPath, ['scripts/build-console.mjs', '--outdir', consoleDir], { cwd: PROJECT_ROOT });
    controller = await createController({
      dataDir: join(workDir, 'controller'),
      adminToken: ADMIN_TOKEN,
      agentToken: AGENT_TOKEN,
      heartbeatMs: 500,
      deadAfterMs: 2_000,
      drainMs: 3_000,
      exposure: { authFailureLimit: 1_000 }, // the revoked agent redials fast in tests
      plugins: [(app) => registerConsoleRoutes(app, { dir: consoleDir })],
    });
    startAgent({ controllerUrl: controller.wsUrl, token: AGENT_TOKEN, id: 'db-1' });
    await controller.deps.hub.waitForAgent('db-1', AbortSignal.timeout(30_000));
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await stopAllAgents();
    await controller?.close();
  });

  it('shows the identity, revokes with a confirm (the agent goes offline), readmits (it enrolls again)', async () => {
    const { page } = browser!;
    const baseUrl = controller!.url;
    await loginThroughForm(page, baseUrl, ADMIN_TOKEN);
    await page.goto(`${baseUrl}/#/agents/db-1`);
    await page.getByTestId('view-agent').waitFor();
    await expect.poll(() => page.getByTestId('agent-identity-state').textContent()).toBe('enrolled');
    expect(await page.getByTestId('agent-identity').textContent()).toContain('enrolled credential');
    expect(await page.getByTestId('agent-readmit').isDisabled()).toBe(true);

    // Cancelling the confirm changes nothing.
    await page.getByTestId('agent-revoke').click();
    await page.getByTestId('confirm-dialog').waitFor();
    expect(await page.getByTestId('confirm-message').textContent()).toContain('cannot reconnect');
    await page.getByTestId('confirm-cancel').click();
    expect(controller!.deps.hub.isConnected('db-1')).toBe(true);

    await page.getByTestId('agent-revoke').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('agent-identity-state').textContent()).toBe('revoked');
    await expect.poll(() => page.getByTestId('agent-connected').textContent(), { timeout: 15_000 }).toBe('offline');
    expect(await page.getByTestId('identity-note').textContent()).toContain('cannot connect');
    expect(await page.getByTestId('agent-revoke').isDisabled()).toBe(true);

    await page.getByTestId('agent-readmit').click();
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('agent-connected').textContent(), { timeout: 20_000 }).toBe('connected');
    await expect.poll(() => page.getByTestId('agent-identity-state').textContent()).toBe('enrolled');

    await page.goto(`${baseUrl}/#/audit`);
    await page.getByTestId('audit-row').first().waitFor();
    const audit = (await page.getByTestId('view-audit').textContent()) ?? '';
    expect(audit).toContain('agent:revoke');
    expect(audit).toContain('agent:readmit');
    expect(browser!.pageErrors).toEqual([]);
  });
});
