/**
 * `npm test` is the one test entry (README, "Running the tests"), and the lint it runs has type
 * information with the promise rules on. These read the real package.json, Makefile, CI script
 * and ESLint config, so a change that quietly drops a step or a rule fails here.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

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

  it('npm test runs typecheck, lint and vitest, in that order', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['test']).toBe('npm run typecheck && npm run lint && npm run vitest');
    expect(scripts['lint']).toMatch(/^eslint /);
    expect(scripts['vitest']).toBe('vitest run');
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
