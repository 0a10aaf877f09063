/**
 * The console as people watch it, in a real Chromium against the real controller process and
 * real agent processes: agents grouped by datacenter, a seed's throughput chart drawn while the
 * seed runs (and whole when opened afterwards), and the live feed (a WebSocket) surviving a
 * controller restart without a reload. The agents' MySQL "service" is a state file, so the
 * seed's stop/start steps run real commands.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTempDir, startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { type BrowserSession, chromiumMissingReason, ensureConsoleBuilt, launchBrowser, loginThroughForm } from '../helpers/browser.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';

const ADMIN_TOKEN = 'console-live-admin-token-0123456789';
const AGENT_TOKEN = 'console-live-agent-token-0123456789';
const CI = process.env['CI'] === 'true';
const MiB = 1024 * 1024;

const missing = chromiumMissingReason();
if (missing !== null) {
  if (CI) {
    it('console live system tests need Chromium', () => {
      throw new Error(`${missing}: required in CI`);
    });
  } else {
    console.warn(`[console-live.test] SKIPPED: ${missing}`);
  }
}

/** A mysql section whose service is the state file `dir/mysql-running`; the datadir holds `mib` MiB. */
function fakeMysql(dir: string, mib: number): Record<string, unknown> {
  const datadir = join(dir, 'data');
  const state = join(dir, 'mysql-running');
  mkdirSync(join(datadir, 'shop'), { recursive: true });
  for (let i = 0; i < mib / 4; i++) writeFileSync(join(datadir, 'shop', `t${i}.ibd`), randomBytes(4 * MiB));
  return { datadir, statusCommand: `test -f '${state}'`, startCommand: `touch '${state}'`, stopCommand: `rm -f '${state}'`, commandTimeoutSeconds: 30 };
}

function pageErrorsOf(browser: BrowserSession): string[] {
  return browser.pageErrors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/i.test(e));
}

describe.skipIf(missing !== null)('the console live: datacenters, throughput chart, feed across a restart (Chromium)', () => {
  let controller: RunningController | null = null;
  let browser: BrowserSession | null = null;
  let port = 0;
  let dataDir = '';
  const agents = new Map<string, AgentProcess>();

  async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await controller!.api(method, path, body);
    return { status: res.status, body: (await res.json()) as T };
  }

  async function waitConnected(ids: string[]): Promise<void> {
    await vi.waitFor(
      async () => {
        for (const id of ids) {
          const res = await api<{ connected?: boolean }>('GET', `/api/agents/${id}`);
          const agent = agents.get(id);
          const said = agent ? `${agent.stderr()} ${JSON.stringify(agent.logs.items.slice(-5))}` : '';
          expect(res.body.connected, `${id}: ${res.status} ${said}`).toBe(true);
        }
      },
      { timeout: 60_000, interval: 200 },
    );
  }

  beforeAll(async () => {
    await ensureConsoleBuilt();
    const work = makeTempDir('seedwire-console-live-');
    dataDir = join(work, 'controller');
    controller = await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, dataDir });
    port = Number(new URL(controller.url).port);
    const common = { controllerUrl: controller.wsUrl, token: AGENT_TOKEN };
    agents.set('src', startAgent({ ...common, id: 'src', config: { datacenter: 'dc1', mysql: fakeMysql(join(work, 'src'), 24) } }));
    agents.set('dst', startAgent({ ...common, id: 'dst', config: { datacenter: 'dc1', mysql: fakeMysql(join(work, 'dst'), 0) } }));
    agents.set('far-1', startAgent({ ...common, id: 'far-1', config: { datacenter: 'dc2' } }));
    agents.set('far-2', startAgent({ ...common, id: 'far-2', config: { datacenter: 'dc2' } }));
    agents.set('loose', startAgent({ ...common, id: 'loose', config: {} }));
    await waitConnected([...agents.keys()]);
    browser = await launchBrowser();
    await loginThroughForm(browser.page, controller.url, ADMIN_TOKEN);
  });

  afterAll(async () => {
    await browser?.close();
    await stopAllAgents(); // also removes the temp dirs (datadirs, controller data)
    await stopAllControllers();
  });

  it('groups the agents page by datacenter, with connected/total per datacenter, live', async () => {
    const page = browser!.page;
    await page.goto(`${controller!.url}/#/agents`);
    const group = (dc: string) => page.getByTestId(`dc-group-${dc}`);
    await expect.poll(() => group('dc1').getAttribute('data-connected'), { timeout: 15_000 }).toBe('2');
    expect(await group('dc1').getAttribute('data-total')).toBe('2');
    await expect.poll(() => page.getByTestId('dc-count-dc2').textContent()).toBe('2/2 connected');
    await expect.poll(() => page.getByTestId('dc-count--').textContent()).toBe('1/1 connected');
    // Datacenters in name order, agents without one last, each agent under its own header.
    const headers = await page.locator('tr.group').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-testid')));
    expect(headers).toEqual(['dc-group-dc1', 'dc-group-dc2', 'dc-group--']);
    expect(await page.getByTestId('dc-body-dc2').getByTestId('agent-row-far-2').count()).toBe(1);
    expect(await page.getByTestId('dc-body-dc1').getByTestId('agent-row-far-2').count()).toBe(0);

    // An agent going away changes its datacenter's count without a reload.
    await agents.get('far-2')!.stop();
    await expect.poll(() => page.getByTestId('dc-count-dc2').textContent(), { timeout: 15_000 }).toBe('1/2 connected');
    expect(await group('dc2').getAttribute('data-connected')).toBe('1');
    await browser!.screenshot('agents-by-datacenter');
    expect(pageErrorsOf(browser!)).toEqual([]);
  });

  it('draws the seed’s throughput while it runs, and the whole history when opened afterwards', async () => {
    const page = browser!.page;
    // 24 MiB at 4 MiB/s: about six seconds of transfer.
    // startTarget false: the target stays stopped, ready for the next seed.
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', lanes: 1, maxBytesPerSec: 4 * MiB, startTarget: false });
    expect(created.status).toBe(202);
    const seedId = created.body.seed.id;
    await page.goto(`${controller!.url}/#/seeds/${encodeURIComponent(seedId)}`);
    await page.getByTestId('view-seed').waitFor();

    // The line's point count grows while the seed is running (sampled once a second).
    const line = page.getByTestId('throughput-line');
    const seen: number[] = [];
    await expect
      .poll(
        async () => {
          const state = await page.getByTestId('seed-state').textContent();
          const points = Number((await line.getAttribute('data-points').catch(() => null)) ?? 0);
          const segments = ((await line.getAttribute('d').catch(() => null)) ?? '').split('L').length;
          if (state === 'running' && points > 0 && points !== seen.at(-1)) {
            expect(segments).toBe(points); // one path segment per sample
            seen.push(points);
          }
          return new Set(seen).size;
        },
        { timeout: 60_000, interval: 200 },
      )
      .toBeGreaterThanOrEqual(3);
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    await expect.poll(() => page.getByTestId('chart-stage-transfer').count(), { timeout: 15_000 }).toBe(1);
    await browser!.screenshot('seed-throughput-running');

    await expect.poll(() => page.getByTestId('seed-state').textContent(), { timeout: 60_000 }).toBe('succeeded');
    const history = (await api<{ samples: Array<{ bytesPerSec: number; stage: string }>; marks: Array<{ kind: string; label: string }> }>('GET', `/api/seeds/${seedId}/throughput`)).body;
    const moving = history.samples.filter((s) => s.stage === 'transfer' && s.bytesPerSec > 0);
    expect(moving.length).toBeGreaterThanOrEqual(3);
    expect(history.marks.filter((m) => m.kind === 'stage').map((m) => m.label)).toEqual(expect.arrayContaining(['transfer', 'verify', 'finalize-target']));
    await expect.poll(async () => Number(await line.getAttribute('data-points')), { timeout: 15_000 }).toBe(history.samples.length);
    expect(await page.getByTestId('throughput-caption').textContent()).toMatch(/1 transfer attempt\b/);
    await browser!.screenshot('seed-throughput-done');

    // A page opened after the seed draws the same whole history.
    const fresh = await browser!.context.newPage();
    try {
      await fresh.goto(`${controller!.url}/#/seeds/${encodeURIComponent(seedId)}`);
      await expect.poll(async () => Number(await fresh.getByTestId('throughput-line').getAttribute('data-points')), { timeout: 15_000 }).toBe(history.samples.length);
      expect(await fresh.getByTestId('chart-stage-transfer').count()).toBe(1);
    } finally {
      await fresh.close();
    }
    expect(pageErrorsOf(browser!)).toEqual([]);
  });

  it('marks a controller restart and the resumed attempt on the chart of a seed that outlives it', async () => {
    const page = browser!.page;
    // 24 MiB at 1 MiB/s: long enough to restart the controller mid-transfer.
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'dst', method: 'cold', lanes: 1, maxBytesPerSec: 1 * MiB, startTarget: false });
    expect(created.status).toBe(202);
    const seedId = created.body.seed.id;
    await page.goto(`${controller!.url}/#/seeds/${encodeURIComponent(seedId)}`);
    const line = page.getByTestId('throughput-line');
    await page.getByTestId('chart-stage-transfer').waitFor({ timeout: 30_000 });
    await expect.poll(async () => Number((await line.getAttribute('data-points')) ?? 0), { timeout: 30_000 }).toBeGreaterThan(4);
    const pointsBefore = Number(await line.getAttribute('data-points'));

    expect(await controller!.stop()).toBe(0);
    controller = await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, dataDir, listen: `127.0.0.1:${port}` });

    // Same page, no reload: the chart carries on from the persisted history, with both marks.
    await page.getByTestId('chart-mark-restart').waitFor({ timeout: 60_000 });
    await page.getByTestId('chart-mark-attempt-2').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('chart-mark-attempt-2').locator('title').textContent()).toContain('resumed');
    await expect.poll(async () => Number((await line.getAttribute('data-points')) ?? 0), { timeout: 30_000 }).toBeGreaterThan(pointsBefore);
    await browser!.screenshot('seed-throughput-resumed');
    await expect.poll(() => page.getByTestId('seed-state').textContent(), { timeout: 90_000 }).toBe('succeeded');
    expect(await page.getByTestId('throughput-caption').textContent()).toMatch(/2 transfer attempts · 1 controller restart/);
    await browser!.screenshot('seed-throughput-resumed-done');
    expect(pageErrorsOf(browser!)).toEqual([]);
  });

  it('keeps its live feed across a controller restart without a reload, and catches up', async () => {
    const page = browser!.page;
    const sockets: string[] = [];
    const onSocket = (ws: { url(): string }): void => {
      sockets.push(ws.url());
    };
    page.on('websocket', onSocket);
    try {
      await page.goto(`${controller!.url}/#/audit`);
      await page.getByTestId('audit-row').first().waitFor();
      await page.evaluate("window.seedwireMarker = 'same-page'");
      const epochBefore = await page.locator('body').getAttribute('data-live-epoch');
      expect(epochBefore).toBeTruthy();
      if (await page.getByTestId('gap-notice').isVisible()) await page.getByTestId('gap-notice-dismiss').click(); // from the test before
      await page.getByTestId('gap-notice').waitFor({ state: 'hidden' });

      // Stop the controller process (graceful), then start it again on the same port and data dir.
      expect(await controller!.stop()).toBe(0);
      await page.getByTestId('connection-banner').waitFor({ state: 'visible', timeout: 15_000 });
      await browser!.screenshot('feed-restart-reconnecting');
      controller = await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, dataDir, listen: `127.0.0.1:${port}` });

      // Something happens right away, very likely before the page has redialled.
      const ghost = `ghost-${randomBytes(3).toString('hex')}`;
      const refused = await api<{ error: { code: string } }>('POST', '/api/seeds', { source: 'src', target: ghost });
      expect(refused.status).toBeGreaterThanOrEqual(400);

      await page.getByTestId('connection-banner').waitFor({ state: 'hidden', timeout: 30_000 });
      await expect.poll(async () => (await page.getByTestId('audit-table').textContent()) ?? '', { timeout: 15_000 }).toContain(ghost);
      // A new controller means a new event numbering: the page noticed and says what that means.
      await expect.poll(() => page.locator('body').getAttribute('data-live-epoch')).not.toBe(epochBefore);
      await page.getByTestId('gap-notice').waitFor({ state: 'visible' });
      expect(await page.getByTestId('gap-notice').getAttribute('data-reason')).toBe('restart');
      expect(await page.getByTestId('gap-notice-text').textContent()).toContain('The controller restarted');
      expect(await page.evaluate('window.seedwireMarker')).toBe('same-page');
      await browser!.screenshot('feed-restart-recovered');

      // Still live on the new controller: an agent reconnecting shows up on its own.
      await waitConnected(['src']);
      const before = await page.getByTestId('audit-row').count();
      expect((await api('POST', '/api/agents/src/ops/hostname', { params: {} })).status).toBe(200);
      await expect.poll(() => page.getByTestId('audit-row').count(), { timeout: 15_000 }).toBeGreaterThan(before);
      // Only the console's own feed socket: no token or cursor in its URL.
      expect(sockets.length).toBeGreaterThanOrEqual(1);
      for (const url of sockets) expect(url).toBe(`ws://127.0.0.1:${port}/api/events/ws`);
      expect(pageErrorsOf(browser!)).toEqual([]);
    } finally {
      page.off('websocket', onSocket);
    }
  });
});
