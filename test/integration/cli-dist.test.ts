/**
 * The built commands as `npx seedwire-controller` / `npx seedwire-agent` run them (CONTRACT
 * section 1): package.json's bin entries exist in dist/ with a shebang, answer --help, and refuse
 * bad flags with one line and a non-zero exit. `make test` builds dist/ first.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/agent.js';

const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(join(PROJECT_ROOT, pkg.bin[bin]!), args, { cwd: PROJECT_ROOT, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 20_000 });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('built commands (dist/)', () => {
  it('package.json declares both bins, built and executable with a node shebang', () => {
    expect(Object.keys(pkg.bin).sort()).toEqual(['seedwire-agent', 'seedwire-controller']);
    for (const file of Object.values(pkg.bin)) {
      const path = join(PROJECT_ROOT, file);
      expect(() => accessSync(path, constants.X_OK), `${file} missing: run npm run build`).not.toThrow();
      expect(readFileSync(path, 'utf8').startsWith('#!/usr/bin/env node')).toBe(true);
    }
  });

  it('--help prints usage and exits 0', () => {
    expect(run('seedwire-controller', ['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--agent-token') });
    expect(run('seedwire-agent', ['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--config') });
  });

  it('bad flags and config exit non-zero with one line naming what is wrong', () => {
    const controller = run('seedwire-controller', ['--listen', 'nope']);
    expect(controller.status).not.toBe(0);
    expect(controller.stderr.trim().split('\n')).toEqual([expect.stringContaining('--listen')]);
    const agent = run('seedwire-agent', ['--controller', 'ws://127.0.0.1:1/agent']);
    expect(agent.status).not.toBe(0);
    expect(agent.stderr.trim().split('\n')).toEqual(['seedwire-agent: config error at token: required (or tokenFile, or SEEDWIRE_AGENT_TOKEN)']);
    const unknown = run('seedwire-agent', ['--no-such-flag']);
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toContain('no-such-flag');
  });
});
