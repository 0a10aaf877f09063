/**
 * Snapshots managed from the web console, in a real Chromium, against the real controller process
 * (serving dist/console) and one real agent process whose datadir lives in a btrfs subvolume on a
 * loop device. The agent's MySQL "service" is a state file outside the datadir. Nothing stands in
 * for the API or the snapshot backend: what the page shows is checked against the disk, the mount
 * table and `btrfs subvolume list`.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { createBtrfs, type BtrfsVolume } from '../helpers/btrfs.js';
import { type BrowserSession, ensureConsoleBuilt, launchBrowser, SCREENSHOT_DIR } from '../helpers/browser.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';

const ADMIN_TOKEN = 'console-snapshots-admin-token-0123456789';
const AGENT_TOKEN = 'console-snapshots-agent-token-0123456789';
const AGENT_ID = 'snap-host';
const SNAPSHOT = 'by-browser';
const NAME_PREFIX = 'seedwire-';

const missing = missingTools(['mkfs.btrfs', 'btrfs', 'losetup', 'chromium'], { root: true });


/** Mount targets in /proc/self/mounts (octal escapes decoded). */
function mountTargets(): string[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((target): target is string => target !== undefined && target !== '')
    .map((target) => target.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
}

async function subvolumePaths(volumeMount: string): Promise<string[]> {
  const { stdout } = await execa('btrfs', ['subvolume', 'list', volumeMount]);
  return stdout
    .split('\n')
    .map((line) => /\bpath (.+)$/.exec(line)?.[1] ?? '')
    .filter((path) => path !== '');
}

describe.skipIf(missing !== null)('snapshots from the web console (Chromium, real controller, real agent on btrfs)', () => {
  let baseDir = '';
  let volume: BtrfsVolume | null = null;
  let controller: RunningController | null = null;
  let browser: BrowserSession | null = null;
  let subvolume = '';
  let datadir = '';
  let snapMount = '';
  let snapshotDir = '';

  beforeAll(async () => {
    await ensureConsoleBuilt();
    // Not makeTempDir: stopAllAgents() removes those recursively, and this one holds mounts that
    // must be taken down first (afterAll does it in order).
    baseDir = mkdtempSync(join(tmpdir(), 'seedwire-console-snap-'));
    volume = await createBtrfs({ baseDir, sizeBytes: 512 * 1024 * 1024 });
    subvolume = await volume.createSubvolume('mysql');
    datadir = join(subvolume, 'data');
    mkdirSync(join(datadir, 'shop'), { recursive: true });
    mkdirSync(join(datadir, 'mysql'), { recursive: true });
    writeFileSync(join(datadir, 'ibdata1'), 'x'.repeat(64 * 1024));
    writeFileSync(join(datadir, 'shop', 'db.opt'), 'default-character-set=utf8mb4\n');
    writeFileSync(join(datadir, 'shop', 'orders.ibd'), 'orders version-1\n');
    writeFileSync(join(datadir, 'mysql', 'user.MYD'), 'root\n');
    snapMount = join(baseDir, 'snapmnt');
    snapshotDir = join(volume.mountPoint, '.snaps');
    const state = join(baseDir, 'mysql-running'); // outside the datadir (and outside the subvolume)
    writeFileSync(state, '');

    controller = await startController({ agentToken: AGENT_TOKEN, adminToken: ADMIN_TOKEN, dataDir: join(baseDir, 'controller') });
    startAgent({
      controllerUrl: controller.wsUrl,
      token: AGENT_TOKEN,
      id: AGENT_ID,
      config: {
        datacenter: 'dc1',
        mysql: { datadir, startCommand: `touch '${state}'`, stopCommand: `rm -f '${state}'`, statusCommand: `test -f '${state}'`, commandTimeoutSeconds: 30 },
        snapshot: { backend: 'btrfs', mountPoint: snapMount, btrfs: { subvolume, snapshotDir, namePrefix: NAME_PREFIX } },
      },
    });
    await vi.waitFor(
      async () => {
        const agent = (await (await controller!.api('GET', `/api/agents/${AGENT_ID}`)).json()) as { connected?: boolean; facts?: { snapshotBackend?: string } | null };
        expect(agent.connected).toBe(true);
        expect(agent.facts?.snapshotBackend).toBe('btrfs');
      },
      { timeout: 30_000, interval: 100 },
    );
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await stopAllAgents(); // the agent first: nothing of it may hold the mounts
    await stopAllControllers();
    await volume?.destroy(); // unmounts the snapshot (wherever it is) and the volume, detaches the loop device
    if (baseDir) rmSync(baseDir, { recursive: true, force: true });
  });

  const pageErrors = (): string[] => browser!.pageErrors.filter((e) => e.startsWith('pageerror') || /Content Security Policy/i.test(e));

  async function openAgentPage(page: Page): Promise<void> {
    await page.goto(`${controller!.url}/#/agents/${AGENT_ID}`);
    await page.getByTestId('view-agent').waitFor();
    await expect.poll(() => page.getByTestId('agent-connected').textContent(), { timeout: 15_000 }).toBe('connected');
  }

  it('creates, mounts, refuses to remove while mounted, unmounts and removes a btrfs snapshot from the page', async () => {
    const { page } = browser!;
    const baseUrl = controller!.url;
    // Every GET of the agent API from the page, and how many are still in flight.
    const agentFetches: string[] = [];
    let agentFetchesInFlight = 0;
    const isAgentFetch = (request: { method(): string; url(): string }): boolean => request.method() === 'GET' && new URL(request.url()).pathname.startsWith('/api/agents');
    page.on('request', (request) => {
      if (!isAgentFetch(request)) return;
      agentFetches.push(new URL(request.url()).pathname);
      agentFetchesInFlight++;
    });
    const settled = (request: { method(): string; url(): string }): void => {
      if (isAgentFetch(request)) agentFetchesInFlight--;
    };
    page.on('requestfinished', settled);
    page.on('requestfailed', settled);

    // Log in through the form; the console then shows the agent page it came from.
    await page.goto(`${baseUrl}/#/agents/${AGENT_ID}`);
    await page.getByTestId('view-login').waitFor();
    await page.getByTestId('login-token').fill(ADMIN_TOKEN);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('view-agent').waitFor();
    await expect.poll(() => page.getByTestId('agent-connected').textContent(), { timeout: 15_000 }).toBe('connected');
    await expect.poll(() => page.getByTestId('fact-snapshot-backend').textContent()).toBe('btrfs');
    await expect.poll(() => page.getByTestId('fact-mounted').textContent()).toBe('nothing');
    await expect.poll(() => page.getByTestId('snapshots-body').textContent()).toContain('No snapshots.');

    // --- Create: the row appears from the pushed facts, without a reload or a re-fetch. ---
    // The live feed's first open loads the view again (main.ts, in the same turn as it sets the
    // feed's cursor): wait for that load and its fetches, so only what the actions cause is counted.
    await expect.poll(() => page.evaluate('document.body.dataset.liveEpoch ?? ""'), { timeout: 15_000 }).not.toBe('');
    await expect.poll(() => page.evaluate('document.body.dataset.viewLoading'), { timeout: 15_000 }).toBe('0');
    await expect.poll(() => agentFetchesInFlight, { timeout: 15_000 }).toBe(0);
    const fetchedBefore = agentFetches.length;
    await page.evaluate('window.seedwireNoReload = true');
    await page.getByTestId('snapshot-name').fill(SNAPSHOT);
    await page.getByTestId('snapshot-create').click();
    const row = page.getByTestId(`snapshot-row-${SNAPSHOT}`);
    await row.waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain(SNAPSHOT);
    expect(await row.locator('td').nth(3).textContent()).toBe('no');
    await expect.poll(() => page.getByTestId('action-status').textContent(), { timeout: 15_000 }).toBe('create-snapshot succeeded');
    expect(await page.evaluate('window.seedwireNoReload === true')).toBe(true);
    expect(agentFetches.slice(fetchedBefore)).toEqual([]);
    expect(await page.getByTestId('snapshot-name').inputValue()).toBe(''); // cleared once started
    // It really is a read-only btrfs snapshot of the subvolume.
    const snapPath = join(snapshotDir, `${NAME_PREFIX}${SNAPSHOT}`);
    expect(await subvolumePaths(volume!.mountPoint)).toContain(`.snaps/${NAME_PREFIX}${SNAPSHOT}`);
    expect((await execa('btrfs', ['subvolume', 'show', snapPath])).stdout).toMatch(/Flags:\s+readonly/);

    // A second operator's tab that has fallen behind: it loads the page now (snapshot not mounted)
    // but its live event stream is refused, so it still offers Remove after the mount below.
    const stale = await browser!.context.newPage();
    let staleCut = true;
    // The console's feed is a WebSocket (/api/events/ws): refused while cut, through once restored.
    await stale.routeWebSocket('**/api/events/ws', (ws) => {
      // Closing a routed socket fails only once the page is gone; the test has ended by then.
      if (staleCut) void ws.close({ code: 1011, reason: 'cut by the test' });
      else ws.connectToServer();
    });
    await openAgentPage(stale);
    await stale.getByTestId(`snapshot-row-${SNAPSHOT}`).waitFor();

    // --- Mount: the mounted fact and the row show it, live. ---
    await page.getByTestId(`snapshot-mount-${SNAPSHOT}`).click();
    await expect.poll(() => page.getByTestId('fact-mounted').textContent(), { timeout: 30_000 }).toBe(`${SNAPSHOT} at ${snapMount}`);
    await expect.poll(() => row.locator('td').nth(3).textContent()).toBe('mounted');
    expect(await page.getByTestId('snapshot-mounted').textContent()).toBe(`Mounted: ${SNAPSHOT} at ${snapMount}`);
    await expect.poll(() => page.getByTestId('action-status').textContent()).toBe('mount-snapshot succeeded');
    expect(await page.getByTestId(`snapshot-mount-${SNAPSHOT}`).isDisabled()).toBe(true);
    expect(await page.getByTestId(`snapshot-remove-${SNAPSHOT}`).isDisabled()).toBe(true); // this page won't even offer it
    expect(await page.getByTestId('snapshot-unmount').isEnabled()).toBe(true);
    expect(agentFetches.slice(fetchedBefore)).toEqual([]);
    await browser!.screenshot('snapshots-mounted');
    expect(mountTargets()).toContain(snapMount);

    // The snapshot is frozen: the live datadir changes, the mounted copy does not (and is read-only).
    writeFileSync(join(datadir, 'shop', 'orders.ibd'), 'orders version-2\n');
    writeFileSync(join(datadir, 'shop', 'new-table.ibd'), 'created after the snapshot\n');
    expect(readFileSync(join(datadir, 'shop', 'orders.ibd'), 'utf8')).toBe('orders version-2\n');
    expect(readFileSync(join(snapMount, 'data', 'shop', 'orders.ibd'), 'utf8')).toBe('orders version-1\n');
    expect(existsSync(join(snapMount, 'data', 'shop', 'new-table.ibd'))).toBe(false);
    expect(readFileSync(join(snapMount, 'data', 'ibdata1'), 'utf8')).toBe('x'.repeat(64 * 1024));
    expect(() => writeFileSync(join(snapMount, 'data', 'shop', 'orders.ibd'), 'no')).toThrow(/EROFS/);

    // --- Remove while mounted, from the tab that fell behind: the agent refuses, the user is told. ---
    expect(await stale.getByTestId('fact-mounted').textContent()).toBe('nothing'); // stale indeed
    await stale.getByTestId(`snapshot-remove-${SNAPSHOT}`).click();
    await expect.poll(() => stale.getByTestId('confirm-message').textContent()).toBe(`Remove snapshot ${SNAPSHOT} on ${AGENT_ID}? This cannot be undone.`);
    await stale.getByTestId('confirm-ok').click();
    await stale.getByTestId('confirm-dialog').waitFor({ state: 'hidden' });
    await expect.poll(() => stale.getByTestId('action-status').textContent(), { timeout: 15_000 }).toMatch(/^remove-snapshot (running|failed)/);
    // The live page shows the refused operation among the agent's recent operations.
    const refusedRow = page.getByTestId('agent-operations').locator('tr', { hasText: 'SEEDWIRE_OP_REFUSED' });
    await refusedRow.waitFor({ timeout: 15_000 });
    const refusedText = (await refusedRow.textContent()) ?? '';
    expect(refusedText).toContain('remove-snapshot');
    expect(refusedText).toContain(`SEEDWIRE_OP_REFUSED: snapshot ${SNAPSHOT} is mounted at ${snapMount}; unmount it first`);
    // The stale tab catches up once its stream is back: its status line says why it was refused.
    staleCut = false;
    await expect
      .poll(() => stale.getByTestId('action-status').textContent(), { timeout: 30_000 })
      .toBe(`remove-snapshot failed: snapshot ${SNAPSHOT} is mounted at ${snapMount}; unmount it first`);
    expect(await stale.getByTestId('action-status').getAttribute('class')).toContain('error');
    await expect.poll(() => stale.getByTestId('fact-mounted').textContent(), { timeout: 15_000 }).toBe(`${SNAPSHOT} at ${snapMount}`);
    expect(await stale.getByTestId(`snapshot-remove-${SNAPSHOT}`).isDisabled()).toBe(true);
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await stale.screenshot({ path: join(SCREENSHOT_DIR, 'snapshots-refused.png'), fullPage: true });
    await stale.close();
    // Nothing was removed.
    expect(await subvolumePaths(volume!.mountPoint)).toContain(`.snaps/${NAME_PREFIX}${SNAPSHOT}`);
    expect(readFileSync(join(snapMount, 'data', 'shop', 'orders.ibd'), 'utf8')).toBe('orders version-1\n');

    // --- Unmount. ---
    await page.getByTestId('snapshot-unmount').click();
    await expect.poll(() => page.getByTestId('fact-mounted').textContent(), { timeout: 30_000 }).toBe('nothing');
    await expect.poll(() => row.locator('td').nth(3).textContent()).toBe('no');
    await expect.poll(() => page.getByTestId('action-status').textContent()).toBe('unmount-snapshot succeeded');
    expect(await page.getByTestId('snapshot-unmount').isDisabled()).toBe(true);
    expect(mountTargets()).not.toContain(snapMount);

    // --- Remove: Cancel keeps it; confirming removes it and the row goes. ---
    const remove = page.getByTestId(`snapshot-remove-${SNAPSHOT}`);
    await expect.poll(() => remove.isEnabled()).toBe(true);
    await remove.click();
    await expect.poll(() => page.getByTestId('confirm-message').textContent()).toContain(`Remove snapshot ${SNAPSHOT} on ${AGENT_ID}?`);
    await page.getByTestId('confirm-cancel').click();
    await page.getByTestId('confirm-dialog').waitFor({ state: 'hidden' });
    expect(await row.isVisible()).toBe(true);
    expect(await page.getByTestId('action-status').textContent()).toBe('unmount-snapshot succeeded'); // nothing started
    await remove.click();
    await page.getByTestId('confirm-dialog').waitFor();
    await page.getByTestId('confirm-ok').click();
    await row.waitFor({ state: 'detached', timeout: 30_000 });
    await expect.poll(() => page.getByTestId('snapshots-body').textContent()).toContain('No snapshots.');
    await expect.poll(() => page.getByTestId('action-status').textContent()).toBe('remove-snapshot succeeded');
    expect(await page.getByTestId('fact-mounted').textContent()).toBe('nothing');
    expect(agentFetches.slice(fetchedBefore)).toEqual([]); // everything above came from pushed facts and events
    expect(await page.evaluate('window.seedwireNoReload === true')).toBe(true);
    await browser!.screenshot('snapshots-empty');

    // On the host: not mounted, no subvolume left, the live datadir untouched by all this.
    expect(mountTargets()).not.toContain(snapMount);
    const left = await subvolumePaths(volume!.mountPoint);
    expect(left.some((path) => path.includes(SNAPSHOT))).toBe(false);
    expect(left).toContain('mysql');
    expect(existsSync(snapPath)).toBe(false);
    expect(readFileSync(join(datadir, 'shop', 'orders.ibd'), 'utf8')).toBe('orders version-2\n');
    expect(pageErrors()).toEqual([]);
  });
});
