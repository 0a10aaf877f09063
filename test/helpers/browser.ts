/**
 * Drives Debian's Chromium through playwright-core for the console's system tests. Never
 * downloads a browser: without /usr/bin/chromium the tests skip visibly, or fail when CI=true.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env['SEEDWIRE_CHROMIUM'] ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = resolve(fileURLToPath(new URL('../..', import.meta.url)), 'test-artifacts', 'console');

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-quic',
  '--no-first-run',
  '--disable-sync',
];

/** null when Chromium can be launched, else why not. */
export function chromiumMissingReason(): string | null {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return null;
  } catch {
    return `no executable Chromium at ${CHROMIUM_PATH} (apt-get install chromium)`;
  }
}

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** Messages the page logged as errors and uncaught exceptions (CSP violations show up here). */
  pageErrors: string[];
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/** A fresh Chromium with its own user-data-dir, removed on close. */
export async function launchBrowser(options: { baseURL?: string } = {}): Promise<BrowserSession> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'seedwire-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
      ...(options.baseURL ? { baseURL: options.baseURL } : {}),
    });
  } catch (error) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw error;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
  });
  let closed = false;
  return {
    context,
    page,
    pageErrors,
    async screenshot(name) {
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      if (closed) return;
      closed = true;
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Logs in through the Login view (the token is typed, never put in a URL); the console then shows the page it came from. */
export async function loginThroughForm(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl}/#/login`);
  await page.getByTestId('login-token').fill(token);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('view-login').waitFor({ state: 'detached' });
}

export interface NewSeedChoice {
  source: string;
  target: string;
  method?: 'snapshot' | 'cold' | 'backup';
  compression?: 'none' | 'gzip' | 'zstd';
  /** @default true (as the API) */
  startTarget?: boolean;
}

/**
 * Fills the New seed form (#/seeds/new) and returns the locality line it shows before anything
 * is confirmed, e.g. "db-2 will be seeded from db-1 (local: same datacenter dc1)", together
 * with `local` / `remote` / null.
 */
export async function fillNewSeedForm(page: Page, baseUrl: string, choice: NewSeedChoice): Promise<{ text: string; locality: string | null }> {
  await page.goto(`${baseUrl}/#/seeds/new`);
  const source = page.getByTestId('new-seed-source');
  await source.locator(`option[value="${choice.source}"]`).waitFor({ state: 'attached' });
  await source.selectOption(choice.source);
  const target = page.getByTestId('new-seed-target');
  await target.locator(`option[value="${choice.target}"]`).waitFor({ state: 'attached' });
  await target.selectOption(choice.target);
  await page.getByTestId('new-seed-method').selectOption(choice.method ?? '');
  await page.getByTestId('new-seed-compression').selectOption(choice.compression ?? '');
  await page.getByTestId('new-seed-start-target').setChecked(choice.startTarget ?? true);
  const locality = page.getByTestId('new-seed-locality');
  await locality.waitFor();
  return { text: (await locality.textContent()) ?? '', locality: (await locality.getAttribute('data-locality')) || null };
}

/**
 * Starts a seed from the browser: fills the form, confirms the dialog, and waits for the seed
 * page. Returns the new seed's id (from the URL). Throws with the form's error when refused.
 */
export async function startSeedFromBrowser(page: Page, baseUrl: string, choice: NewSeedChoice): Promise<{ seedId: string; locality: string | null; confirmText: string }> {
  const { locality } = await fillNewSeedForm(page, baseUrl, choice);
  await page.getByTestId('new-seed-submit').click();
  const dialog = page.getByTestId('confirm-dialog');
  await dialog.waitFor();
  const confirmText = (await page.getByTestId('confirm-message').textContent()) ?? '';
  await page.getByTestId('confirm-ok').click();
  const outcome = await Promise.race([
    page.getByTestId('view-seed').waitFor().then(() => 'seed' as const),
    page.getByTestId('new-seed-error').waitFor({ state: 'visible' }).then(() => 'error' as const),
  ]);
  if (outcome === 'error') throw new Error(`seed refused in the browser: ${await page.getByTestId('new-seed-error').textContent()}`);
  const match = /#\/seeds\/([^/?]+)/.exec(page.url());
  if (!match?.[1]) throw new Error(`not on a seed page: ${page.url()}`);
  return { seedId: decodeURIComponent(match[1]), locality, confirmText };
}

const PROJECT_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Fresh console bundle: built when dist/console is missing or older than its sources. */
export async function ensureConsoleBuilt(): Promise<void> {
  const out = join(PROJECT_ROOT, 'dist', 'console');
  const built = join(out, 'app.js');
  let stale = !existsSync(join(out, 'index.html')) || !existsSync(built);
  if (!stale) {
    const builtAt = statSync(built).mtimeMs;
    const sourceDir = join(PROJECT_ROOT, 'server-stub', 'console');
    stale = readdirSync(sourceDir, { withFileTypes: true, recursive: true }).some((e) => e.isFile() && statSync(join(e.parentPath, e.name)).mtimeMs > builtAt);
  }
  if (stale) await promisify(execFile)(process.execPath, ['scripts/build-console.mjs'], { cwd: PROJECT_ROOT });
}
