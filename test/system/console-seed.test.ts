/**
 * A seed started, watched and aborted from the web console, in a real Chromium, against the real
 * controller process (serving dist/console) and real agent processes. The agents' MySQL
 * "service" is a state file (running while it exists), so the seed machine's stop/start steps run
 * real commands; the source datadir is ~64 MiB of generated files. Nothing stands in for the API:
 * the console is under test, the controller and agents are its environment.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { makeTempDir, startAgent, stopAllAgents } from '../helpers/agent.js';
import { type BrowserSession, chromiumMissingReason, ensureConsoleBuilt, fillNewSeedForm, launchBrowser, loginThroughForm } from '../helpers/browser.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';

const ADMIN_TOKEN = 'console-seed-admin-token-0123456789';
const AGENT_TOKEN = 'console-seed-agent-token-0123456789';
const CI = process.env['CI'] === 'true';
const MiB = 1024 * 1024;
/** docs/seed-flow.md, in order. */
const STAGES = ['precheck', 'prepare-source', 'prepare-target', 'transfer', 'verify', 'finalize-target', 'cleanup-source'];

const missing = chromiumMissingReason();
if (missing !== null) {
  if (CI) {
    it('console seed system tests need Chromium', () => {
      throw new Error(`${missing}: required in CI`);
    });
  } else {
    console.warn(`[console-seed.test] SKIPPED: ${missing}`);
  }
}

interface FakeMysql {
  datadir: string;
  state: string;
  config: Record<string, unknown>;
}

/** A mysql section whose service is the state file `dir/mysql-running` (outside the datadir). */
function fakeMysql(dir: string, running: boolean): FakeMysql {
  const datadir = join(dir, 'data');
  const state = join(dir, 'mysql-running');
  mkdirSync(datadir, { recursive: true });
  if (running) writeFileSync(state, '');
  return {
    datadir,
    state,
    config: { datadir, statusCommand: `test -f '${state}'`, startCommand: `touch '${state}'`, stopCommand: `rm -f '${state}'`, commandTimeoutSeconds: 30 },
  };
}

/** A datadir-like tree of about 64 MiB: six random 8 MiB files, ~1000 small ones, an empty one. */
function fillDatadir(datadir: string): void {
  mkdirSync(join(datadir, 'mysql'), { recursive: true });
  for (let i = 1; i <= 3; i++) writeFileSync(join(datadir, `ibdata${i}`), randomBytes(8 * MiB));
  writeFileSync(join(datadir, 'ib_logfile0'), randomBytes(8 * MiB));
  writeFileSync(join(datadir, 'undo001'), randomBytes(8 * MiB));
  writeFileSync(join(datadir, 'mysql', 'innodb_table_stats.ibd'), randomBytes(8 * MiB));
  for (let d = 0; d < 8; d++) {
    const schema = join(datadir, `shop_${d}`);
    mkdirSync(schema);
    writeFileSync(join(schema, 'db.opt'), 'default-character-set=utf8mb4\n');
    for (let t = 0; t < 64; t++) {
      writeFileSync(join(schema, `t${t}.frm`), randomBytes(1024 + ((d * 64 + t) % 7) * 512));
      writeFileSync(join(schema, `t${t}.ibd`), randomBytes(16 * 1024 + ((d * 64 + t) % 13) * 4096));
    }
  }
  writeFileSync(join(datadir, 'mysql', 'empty.MYD'), '');
  writeFileSync(join(datadir, 'aria_log_control'), randomBytes(52));
}

/** relative path → sha256 of every regular file under `dir`. */
function digestTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) out.set(relative(dir, path), createHash('sha256').update(readFileSync(path)).digest('hex'));
      else out.set(relative(dir, path), `not a regular file`);
    }
  };
  walk(dir);
  return out;
}

function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}


describe.skipIf(missing !== null)('seeding from the web console (Chromium, real controller and agents)', () => {
  let controller: RunningController | null = null;
  let browser: BrowserSession | null = null;
  let src: FakeMysql;
  let dst: FakeMysql;
  let bad: FakeMysql;
  let sourceDigests: Map<string, string>;

  async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await controller!.api(method, path, body);
    return { status: res.status, body: (await res.json()) as T };
  }

  /** Records, in the page, every data-percent the progress bar takes with the seed state shown then. */
  async function recordProgress(page: Page): Promise<void> {
    await page.evaluate(`(() => {
      window.seedwireProgress = [];
      window.seedwireProgressObserver?.disconnect();
      const record = (el) => window.seedwireProgress.push({
        percent: el.getAttribute('data-percent'),
        state: document.querySelector('[data-testid="seed-state"]')?.textContent ?? null,
      });
      window.seedwireProgressObserver = new MutationObserver((mutations) => {
        for (const m of mutations) if (m.target.getAttribute('data-testid') === 'seed-progress') record(m.target);
      });
      window.seedwireProgressObserver.observe(document.body, { subtree: true, attributes: true, attributeFilter: ['data-percent'] });
    })()`);
  }

  async function recordedProgress(page: Page): Promise<Array<{ percent: string | null; state: string | null }>> {
    return (await page.evaluate('window.seedwireProgress')) as Array<{ percent: string | null; state: string | null }>;
  }

  /** Fills the New seed form (src → dst, cold) with a bandwidth limit, confirms, and returns the seed id. */
  async function startSeedWithLimit(page: Page, baseUrl: string, mibPerSec: string): Promise<{ seedId: string; locality: string | null; confirmText: string }> {
    const { locality } = await fillNewSeedForm(page, baseUrl, { source: 'src', target: 'dst', method: 'cold' });
    await page.getByTestId('new-seed-max-rate').fill(mibPerSec);
    await page.getByTestId('new-seed-submit').click();
    await page.getByTestId('confirm-dialog').waitFor();
    const confirmText = (await page.getByTestId('confirm-message').textContent()) ?? '';
    await page.getByTestId('confirm-ok').click();
    await page.getByTestId('view-seed').waitFor();
    const match = /#\/seeds\/([^/?]+)/.exec(page.url());
    if (!match?.[1]) throw new Error(`not on a seed page: ${page.url()}`);
    return { seedId: decodeURIComponent(match[1]), locality, confirmText };
  }

  beforeAll(async () => {
    await ensureConsoleBuilt();
    const work = makeTempDir('seedwire-console-seed-');
    src = fakeMysql(join(work, 'src'), false); // stopped: a cold seed needs no downtime decision
    dst = fakeMysql(join(work, 'dst'), false);
    fillDatadir(src.datadir);
    sourceDigests = digestTree(src.datadir);
    expect(treeBytes(src.datadir)).toBeGreaterThan(60 * MiB);

    controller = await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, dataDir: join(work, 'controller') });
    const common = { controllerUrl: controller.wsUrl, token: AGENT_TOKEN };
    startAgent({ ...common, id: 'src', config: { datacenter: 'dc1', mysql: src.config } });
    startAgent({ ...common, id: 'dst', config: { datacenter: 'dc1', mysql: dst.config } });
    // A target whose start command fails, in its own words: the seed's finalize step shows them.
    bad = fakeMysql(join(work, 'bad'), false);
    startAgent({ ...common, id: 'bad', config: { datacenter: 'dc1', mysql: { ...bad.config, startCommand: `echo 'bad: port 3306 is taken by another server' >&2; exit 3` } } });
    // ~20 MB of command output: far more live events than a stalled viewer's queue holds.
    startAgent({ ...common, id: 'far', config: { datacenter: 'dc2', customCommands: { flood: `head -c 20000000 /dev/zero | tr '\\0' x | fold -w 200` } } });
    await vi.waitFor(
      async () => {
        for (const id of ['src', 'dst', 'far', 'bad']) {
          const agent = (await api<{ connected?: boolean; facts?: unknown }>('GET', `/api/agents/${id}`)).body;
          expect(agent.connected).toBe(true);
          expect(agent.facts).toBeTruthy();
        }
      },
      // Four agents start under tsx: on a loaded machine that alone can take most of a minute.
      { timeout: 60_000, interval: 100 },
    );
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await stopAllAgents(); // also removes every temp dir made with makeTempDir (datadirs, controller data)
    await stopAllControllers();
  });

  it('starts a cold seed from the page, shows its progress live, and ends with an identical target', async () => {
    const { page } = browser!;
    const baseUrl = controller!.url;
    await page.goto(`${baseUrl}/#/agents`);
    await page.getByTestId('view-login').waitFor();
    await page.getByTestId('login-token').fill(ADMIN_TOKEN);
    await page.getByTestId('login-submit').click();
    for (const id of ['src', 'dst', 'far']) {
      await expect.poll(() => page.getByTestId(`agent-connected-${id}`).textContent(), { timeout: 15_000 }).toBe('connected');
    }

    // Locality is shown before anything is confirmed.
    const remote = await fillNewSeedForm(page, baseUrl, { source: 'src', target: 'far' });
    expect(remote.locality).toBe('remote');
    expect(remote.text).toContain('dc2');

    await recordProgress(page);
    const { seedId, locality, confirmText } = await startSeedWithLimit(page, baseUrl, '16');
    expect(locality).toBe('local');
    expect(confirmText).toContain('dst will be seeded from src (local');
    expect(confirmText).toContain('16 MiB/s');
    const created = (await api<{ method: string; maxBytesPerSec?: number | null; effectiveCompression?: string }>('GET', `/api/seeds/${seedId}`)).body;
    expect(created.method).toBe('cold');
    expect(created.maxBytesPerSec).toBe(16 * MiB);

    // While it runs, the bar shows a percentage strictly between 0 and 100.
    const progress = page.getByTestId('seed-progress');
    const inFlight = (p: string | null): boolean => p !== null && p !== '' && Number(p) > 0 && Number(p) < 100;
    await expect
      .poll(async () => inFlight(await progress.getAttribute('data-percent')) && (await page.getByTestId('seed-state').textContent()) === 'running', { timeout: 30_000, interval: 50 })
      .toBe(true);
    await browser!.screenshot('seed-running');
    expect(await page.getByTestId('seed-abort').isVisible()).toBe(true);

    await expect.poll(() => page.getByTestId('seed-state').textContent(), { timeout: 60_000 }).toBe('succeeded');
    await expect.poll(() => progress.getAttribute('data-percent')).toBe('100');
    for (const stage of STAGES) {
      await expect.poll(() => page.getByTestId(`stage-state-${stage}`).textContent(), { timeout: 10_000 }).toBe('succeeded');
    }
    expect(await page.getByTestId('seed-stages').locator('tbody tr').count()).toBe(STAGES.length);
    expect(await page.getByTestId('seed-abort').isHidden()).toBe(true);
    expect(await page.getByTestId('seed-error').isHidden()).toBe(true);
    await browser!.screenshot('seed-done');

    // The bar went through at least two different values strictly between 0 and 100 while running.
    const seen = await recordedProgress(page);
    const runningValues = new Set(seen.filter((s) => s.state === 'running' && inFlight(s.percent)).map((s) => s.percent));
    expect(runningValues.size, `progress values seen: ${JSON.stringify(seen)}`).toBeGreaterThanOrEqual(2);
    expect(seen.at(-1)?.percent).toBe('100');

    // The target holds exactly the source's files, the marker is gone, both "MySQL"s run.
    expect(existsSync(join(dst.datadir, INCOMPLETE_MARKER))).toBe(false);
    const targetDigests = digestTree(dst.datadir);
    expect(targetDigests.size).toBe(sourceDigests.size);
    expect(Object.fromEntries(targetDigests)).toEqual(Object.fromEntries(sourceDigests));
    expect(existsSync(dst.state)).toBe(true); // startTarget (default) started it
    expect(existsSync(src.state)).toBe(false); // the source was stopped before the seed: it stays stopped
    await expect.poll(async () => (await page.getByTestId('stage-prepare-source').textContent()) ?? '').toContain('already stopped');
    const done = (await api<{ state: string; bytesDone: number; bytesTotal: number; lanes: number }>('GET', `/api/seeds/${seedId}`)).body;
    expect(done.state).toBe('succeeded');
    expect(done.bytesDone).toBe(done.bytesTotal);

    // Each agent-side step is listed with its operation, agent, state and exit code; its output opens below.
    // One seed-receive and one seed-send per lane (the controller's default lane count).
    const transfer = (await api<Array<{ id: string; op: string }>>('GET', `/api/operations?seed=${seedId}`)).body.filter((s) => s.op === 'seed-receive' || s.op === 'seed-send').map((s) => s.id);
    expect(transfer).toHaveLength(2 * done.lanes);
    const send = transfer.find((id) => id.includes('.send.'))!;
    const steps = [`${seedId}.prepare-source.status`, `${seedId}.prepare-target`, ...transfer, `${seedId}.finalize-target`];
    await expect.poll(() => page.getByTestId('seed-steps').locator('tbody tr').count(), { timeout: 10_000 }).toBe(steps.length);
    for (const step of steps) {
      expect(await page.getByTestId(`step-state-${step}`).textContent()).toBe('succeeded');
    }
    expect(await page.getByTestId(`step-row-${send}`).textContent()).toContain('seed-send');
    expect(await page.getByTestId(`step-row-${send}`).textContent()).toContain('src');
    await page.getByTestId(`step-show-${seedId}.finalize-target`).click();
    await expect.poll(() => page.getByTestId('step-output').textContent(), { timeout: 10_000 }).toContain(`$ touch '${dst.state}'`);
    await expect.poll(() => page.getByTestId('step-output-status').textContent(), { timeout: 10_000 }).toBe('end of output (succeeded)');
    expect(browser!.pageErrors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/i.test(e))).toEqual([]);
  });

  it("shows a failed seed's failing step with its own output", async () => {
    const { page } = browser!;
    const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', { source: 'src', target: 'bad', method: 'cold' });
    expect(created.status).toBe(202);
    const seedId = created.body.seed.id;
    await page.goto(`${controller!.url}/#/seeds/${encodeURIComponent(seedId)}`);
    await expect.poll(() => page.getByTestId('seed-state').textContent(), { timeout: 120_000 }).toBe('failed');
    expect(await page.getByTestId('seed-error').textContent()).toContain('bad: port 3306 is taken by another server');
    const finalize = `${seedId}.finalize-target`;
    await expect.poll(() => page.getByTestId(`step-state-${finalize}`).textContent(), { timeout: 10_000 }).toBe('failed');
    // The failed step's output is shown without asking: the command line, then its own words.
    await expect.poll(() => page.getByTestId('step-output-title').textContent(), { timeout: 10_000 }).toBe(`Output of ${finalize}`);
    await expect.poll(() => page.getByTestId('step-output').textContent(), { timeout: 10_000 }).toContain('bad: port 3306 is taken by another server');
    expect(await page.getByTestId('step-output').textContent()).toContain("$ echo 'bad: port 3306 is taken by another server' >&2; exit 3");
    await browser!.screenshot('seed-failed-step');
    expect(browser!.pageErrors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/i.test(e))).toEqual([]);
  });

  it('aborts a running seed from its page after confirming; the target keeps its incomplete marker', async () => {
    const { page } = browser!;
    const baseUrl = controller!.url;
    // The target must be stopped again for a new seed.
    const stop = await api<{ operation: { state: string } }>('POST', '/api/agents/dst/ops/mysql-stop', { params: {} });
    expect(stop.body.operation.state).toBe('succeeded');
    expect(existsSync(dst.state)).toBe(false);

    // A bandwidth limit below the API's minimum is refused in the form, before any dialog.
    await fillNewSeedForm(page, baseUrl, { source: 'src', target: 'dst', method: 'cold' });
    await page.getByTestId('new-seed-max-rate').fill('0.01');
    await page.getByTestId('new-seed-submit').click();
    await expect.poll(() => page.getByTestId('new-seed-error').textContent()).toContain('Bandwidth limit');
    expect(await page.getByTestId('confirm-dialog').isHidden()).toBe(true);

    // 1 MiB/s: over a minute for the whole datadir, plenty of time to abort mid-transfer.
    const sourceWasRunning = existsSync(src.state);
    const { seedId } = await startSeedWithLimit(page, baseUrl, '1');
    const progress = page.getByTestId('seed-progress');
    await expect.poll(async () => Number((await progress.getAttribute('data-percent')) || 0), { timeout: 30_000, interval: 50 }).toBeGreaterThan(0);
    expect(await page.getByTestId('seed-state').textContent()).toBe('running');
    expect(existsSync(join(dst.datadir, INCOMPLETE_MARKER))).toBe(true);

    await page.getByTestId('seed-abort').click();
    await expect.poll(() => page.getByTestId('confirm-message').textContent()).toContain(seedId);
    await page.getByTestId('confirm-ok').click();
    await expect.poll(() => page.getByTestId('seed-state').textContent(), { timeout: 60_000 }).toBe('aborted');
    expect(Number((await progress.getAttribute('data-percent')) || 0)).toBeLessThan(100);
    await expect.poll(() => page.getByTestId('seed-error').textContent()).toContain('SEEDWIRE_CANCELED');
    expect(await page.getByTestId('seed-abort').isHidden()).toBe(true);
    expect(await page.getByTestId('stage-state-transfer').textContent()).toBe('failed');
    for (const stage of ['verify', 'finalize-target', 'cleanup-source']) {
      expect(await page.getByTestId(`stage-state-${stage}`).textContent()).not.toBe('succeeded');
    }
    await browser!.screenshot('seed-aborted');

    // The partial data is gone, the marker stays, the target's MySQL was not started; the
    // source's MySQL is as it was before the seed (a cold seed restarts only what it stopped).
    expect(readdirSync(dst.datadir)).toEqual([INCOMPLETE_MARKER]);
    expect(existsSync(dst.state)).toBe(false);
    expect(existsSync(src.state)).toBe(sourceWasRunning);
    const record = (await api<{ state: string; error: { code: string } | null }>('GET', `/api/seeds/${seedId}`)).body;
    expect(record.state).toBe('aborted');
    expect(record.error?.code).toBe('SEEDWIRE_CANCELED');
    // The seeds list shows it too.
    await page.getByTestId('nav-seeds').click();
    await expect.poll(() => page.getByTestId(`seed-row-${seedId}`).textContent()).toContain('aborted');
    rmSync(join(dst.datadir, INCOMPLETE_MARKER)); // not needed by later tests; keeps the dir tidy
  });

  it('tells the user about a gap when the live stream fell behind, and resynchronises', async () => {
    const { page } = browser!;
    const baseUrl = controller!.url;
    await loginThroughForm(page, baseUrl, ADMIN_TOKEN); // also when run on its own (-t gap)
    await page.goto(`${baseUrl}/#/operations`);
    await page.getByTestId('view-operations').waitFor();
    expect(await page.getByTestId('gap-notice').isHidden()).toBe(true);

    // A slow viewer: Chromium throttled to 32 KiB/s (applies to connections opened from now on, so
    // the page is reloaded and its live feed opened again under the throttle). The controller's
    // socket to it then stops draining while a flood of output events goes by.
    const requests: string[] = [];
    const onRequest = (request: { url(): string }): void => {
      requests.push(new URL(request.url()).pathname);
    };
    const feeds: string[] = [];
    const onSocket = (ws: { url(): string }): void => {
      feeds.push(new URL(ws.url()).pathname);
    };
    const cdp = await page.context().newCDPSession(page);
    let floodId = '';
    try {
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: 32 * 1024, uploadThroughput: -1 });
      page.on('request', onRequest);
      page.on('websocket', onSocket);
      await page.reload();
      await page.getByTestId('view-operations').waitFor();
      await expect.poll(() => feeds.filter((p) => p === '/api/events/ws').length, { timeout: 15_000 }).toBe(1);
      await page.locator('body[data-live-epoch]').waitFor({ state: 'attached', timeout: 15_000 });
      const flood = await api<{ operation: { id: string; state: string } }>('POST', '/api/agents/far/ops/custom-command?wait=120', { params: { name: 'flood' } });
      expect(flood.body.operation.state).toBe('succeeded');
      floodId = flood.body.operation.id;
    } finally {
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }).catch(() => undefined);
    }
    const fetchesBefore = requests.filter((p) => p === '/api/operations').length;

    // Once the viewer drains, the controller sends a gap event: the console says so, visibly,
    // re-fetches the page (no new feed socket: the same one carried the gap), and shows the
    // flood operation's final state whether or not its own events were among those lost.
    await page.getByTestId('gap-notice').waitFor({ state: 'visible', timeout: 60_000 });
    expect(await page.getByTestId('gap-notice-text').textContent()).toMatch(/Live updates fell behind: \d+ events? missed/);
    await expect.poll(() => requests.filter((p) => p === '/api/operations').length, { timeout: 15_000 }).toBeGreaterThan(fetchesBefore);
    await expect.poll(() => page.getByTestId(`op-row-state-${floodId}`).textContent(), { timeout: 15_000 }).toBe('succeeded');
    expect(feeds).toEqual(['/api/events/ws']);
    expect(await page.getByTestId('connection-banner').isHidden()).toBe(true);
    await browser!.screenshot('gap-resync');
    page.off('request', onRequest);
    page.off('websocket', onSocket);
    await page.getByTestId('gap-notice-dismiss').click();
    await page.getByTestId('gap-notice').waitFor({ state: 'hidden' });
    expect(browser!.pageErrors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/i.test(e))).toEqual([]);
  });
});
