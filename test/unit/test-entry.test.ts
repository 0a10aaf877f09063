/**
 * `npm test` is the one test entry (README, "Running the tests"), and the lint it runs has type
 * information with the promise rules on. These read the real package.json, Makefile, CI script
 * and ESLint config, so a change that quietly drops a step or a rule fails here.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { execa } from 'execa';
import { describe, expect, it, vi } from 'vitest';
import config from '../../vitest.config.js';

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

/** The recipe lines of a Makefile target (tab-indented lines after `name:`). */
function recipeOf(makefile: string, target: string): string[] {
  const lines = makefile.split('\n');
  const start = lines.findIndex((line) => line.startsWith(`${target}:`));
  if (start === -1) return [];
  const recipe: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('\t')) break;
    recipe.push(line.trim());
  }
  return recipe;
}

describe('the test entry', () => {
  it("make test installs the same Debian packages as CI, so a fresh machine's `make test` has PostgreSQL and nats-server too", () => {
    const script = read('scripts/install-deps.sh');
    const listed = /^debs=\(([^)]*)\)$/m.exec(script)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
    const ci = read('.ci/run');
    const installed = /apt-get install -y[^\n]*\\\n([\s\S]*?)>\/dev\/null/.exec(ci)?.[1]?.split(/[\s\\]+/).filter(Boolean) ?? [];
    expect(listed).toContain('postgresql');
    expect(listed).toContain('nats-server');
    expect([...listed].sort()).toEqual([...installed].sort());
  });

  it('npm test runs typecheck, lint and vitest (its two lanes side by side), in that order', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['test']).toBe('npm run typecheck && npm run lint && npm run vitest:lanes');
    expect(scripts['lint']).toMatch(/^eslint /);
    expect(scripts['vitest']).toBe('vitest run');
    expect(scripts['vitest:lanes']).toBe('node scripts/test-lanes.mjs');
  });

  it("the two lanes together take every folder of tests, each in one lane only, and run one file at a time", () => {
    const projects = (config.test?.projects ?? []) as { test: { name: string; include: string[] } }[];
    expect(projects.map((p) => p.test.name).sort()).toEqual(['host', 'process']);
    // A lane runs one file at a time when its projects run in one process (`npm run vitest`).
    expect(config.test?.maxWorkers).toBe(1);
    const folderOf = (pattern: string): string => /^test\/([^/*]+)\/\*\*\/\*\.test\.ts$/.exec(pattern)?.[1] ?? `unexpected pattern ${pattern}`;
    const taken = projects.flatMap((p) => p.test.include.map(folderOf));
    const withTests = readdirSync(new URL('../', import.meta.url), { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && readdirSync(new URL(`../${entry.name}/`, import.meta.url), { recursive: true }).some((f) => String(f).endsWith('.test.ts')))
      .map((entry) => entry.name);
    expect([...taken].sort()).toEqual([...withTests].sort());
    expect(new Set(taken).size).toBe(taken.length);
  });

  it('the lanes runner prefixes each lane, runs both to the end, and fails when either lane fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-lanes-'));
    try {
      // A stand-in for vitest: the runner, not vitest, is under test here.
      const fake = join(dir, 'vitest.mjs');
      writeFileSync(fake, "const p = process.argv[process.argv.indexOf('--project') + 1]; console.log('ran ' + p + ' ' + process.argv.slice(2).join(' ')); process.exit(p === process.env.FAIL_LANE ? 3 : 0);\n");
      const run = (failLane: string) =>
        execa(process.execPath, [join(PROJECT_ROOT, 'scripts/test-lanes.mjs')], { reject: false, env: { SEEDWIRE_TEST_LANES_VITEST: fake, FAIL_LANE: failLane } });
      const good = await run('none');
      expect(good.exitCode).toBe(0);
      expect(good.stdout).toContain('[host] ran host run --project host');
      expect(good.stdout).toContain('[process] ran process run --project process');
      expect(good.stdout).toMatch(/^lane host: passed in /m);
      const bad = await run('host');
      expect(bad.exitCode).toBe(1);
      expect(bad.stdout).toMatch(/^lane host: failed \(exit 3\) in /m);
      expect(bad.stdout).toMatch(/^lane process: passed in /m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the lanes runner: with arguments, one vitest run of them; SIGTERM reaches both lanes and fails the run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-lanes-'));
    try {
      // A stand-in for vitest that says what it was given, and waits while WAIT is set.
      const fake = join(dir, 'vitest.mjs');
      writeFileSync(fake, "console.log('ran ' + process.argv.slice(2).join(' ')); if (process.env.WAIT) setInterval(() => undefined, 1000); else process.exit(process.argv.includes('fail') ? 2 : 0);\n");
      const runner = join(PROJECT_ROOT, 'scripts/test-lanes.mjs');
      const env = { SEEDWIRE_TEST_LANES_VITEST: fake };
      const filtered = await execa(process.execPath, [runner, 'test/unit', '-t', 'fail'], { reject: false, env });
      expect(filtered.exitCode).toBe(2);
      expect(filtered.stdout.trim()).toBe('ran run test/unit -t fail');

      const waiting = execa(process.execPath, [runner], { reject: false, env: { ...env, WAIT: '1' } });
      let seen = '';
      waiting.stdout?.on('data', (chunk: Buffer) => (seen += chunk.toString()));
      await vi.waitFor(() => {
        expect(seen).toContain('[host] ran run --project host');
        expect(seen).toContain('[process] ran run --project process');
      }, { timeout: 10_000, interval: 20 });
      waiting.kill('SIGTERM');
      const stopped = await waiting;
      expect(stopped.exitCode).toBe(1);
      expect(stopped.stdout).toMatch(/^lane host: killed by SIGTERM in /m);
      expect(stopped.stdout).toMatch(/^lane process: killed by SIGTERM in /m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('make test builds, then calls npm test; CI calls make test', () => {
    const makefile = read('Makefile');
    expect(makefile).toMatch(/^test: build$/m);
    expect(recipeOf(makefile, 'test')).toEqual(['npm test']);
    const ci = read('.ci/run');
    expect(ci).toMatch(/^export CI=true$/m);
    expect(ci).toMatch(/^make test$/m);
    expect(ci).toMatch(/^make test-long$/m);
  });
});

describe('lint', () => {
  const eslint = new ESLint({ cwd: PROJECT_ROOT });

  it.each(['agent/main.ts', 'server-stub/app.ts', 'server-stub/console/src/main.ts', 'test/unit/errors.test.ts', 'bench/run.ts'])(
    '%s is linted with type information and the promise rules as errors',
    async (file) => {
      const config = (await eslint.calculateConfigForFile(file)) as {
        rules: Record<string, unknown[]>;
        languageOptions: { parserOptions: { project?: unknown; projectService?: unknown } };
      };
      const { parserOptions } = config.languageOptions;
      expect(parserOptions.project ?? parserOptions.projectService, 'type information').toBeTruthy();
      for (const rule of ['no-floating-promises', 'no-misused-promises', 'await-thenable']) {
        expect(config.rules[`@typescript-eslint/${rule}`]?.[0], rule).toBe(2);
      }
    },
  );
});
