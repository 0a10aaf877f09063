/**
 * The built commands as `npx seedwire-controller` / `npx seedwire-agent` run them (README,
 * "Running it"): package.json's bin entries exist in dist/ with a shebang, answer --help, and refuse
 * bad flags with one line and a non-zero exit. `make test` builds dist/ first.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PROJECT_ROOT } from '../helpers/agent.js';
import { NODE_FLAGS } from '../../shared/node-flags.js';

const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(join(PROJECT_ROOT, pkg.bin[bin]!), args, { cwd: PROJECT_ROOT, encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 20_000 });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('built commands (dist/)', () => {
  it('package.json declares the three bins, built and executable with a node shebang', () => {
    expect(Object.keys(pkg.bin).sort()).toEqual(['seedwire', 'seedwire-agent', 'seedwire-controller']);
    for (const file of Object.values(pkg.bin)) {
      const path = join(PROJECT_ROOT, file);
      expect(() => accessSync(path, constants.X_OK), `${file} missing: run npm run build`).not.toThrow();
      // The two daemons start node with the V8 flags of shared/node-flags.ts; the command line needs none.
      const shebang = file.endsWith('cli/main.js') ? '#!/usr/bin/env node\n' : `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}\n`;
      expect(readFileSync(path, 'utf8').startsWith(shebang), `${file}'s first line`).toBe(true);
    }
  });

  it('--help prints usage and exits 0', () => {
    expect(run('seedwire-controller', ['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--agent-token') });
    expect(run('seedwire-agent', ['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--config') });
    expect(run('seedwire', ['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--token-file') });
    expect(run('seedwire', ['seed', '--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('--max-rate') });
    expect(run('seedwire', ['no-such-command']).status).toBe(2);
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

  const started: Array<ReturnType<typeof spawn>> = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const child of started.splice(0)) child.kill('SIGKILL');
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** Starts a built command and collects its stdout until the test ends. */
  function start(bin: string, args: string[], env: Record<string, string>): { output: () => string } {
    const child = spawn(join(PROJECT_ROOT, pkg.bin[bin]!), args, { cwd: PROJECT_ROOT, env: { PATH: process.env['PATH'] ?? '', ...env } });
    started.push(child);
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    return { output: () => text };
  }

  it('takes its data dir and tokens from SEEDWIRE_DATA_DIR, SEEDWIRE_AGENT_TOKEN and SEEDWIRE_ADMIN_TOKEN', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-env-'));
    dirs.push(dir);
    const controller = start('seedwire-controller', ['--listen', '127.0.0.1:0'], {
      SEEDWIRE_DATA_DIR: join(dir, 'data'),
      SEEDWIRE_AGENT_TOKEN: 'env-agent-token',
      SEEDWIRE_ADMIN_TOKEN: 'env-admin-token',
    });
    let url = '';
    await vi.waitFor(() => {
      url = /"url":"(http:[^"]+)"/.exec(controller.output())?.[1] ?? '';
      expect(url).not.toBe('');
    }, { timeout: 20_000 });
    expect(existsSync(join(dir, 'data', 'seedwire.db'))).toBe(true);
    expect(existsSync(join(dir, 'data', 'admin-token'))).toBe(false); // given, so not generated
    expect((await fetch(`${url}/api/agents`, { headers: { authorization: 'Bearer env-admin-token' } })).status).toBe(200);
    expect((await fetch(`${url}/api/agents`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect(controller.output()).not.toContain('env-admin-token');
    expect(controller.output()).not.toContain('env-agent-token');
  });

  it('--log-pretty writes human-readable lines instead of JSON, on both commands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-pretty-'));
    dirs.push(dir);
    const controller = start('seedwire-controller', ['--listen', '127.0.0.1:0', '--data-dir', dir, '--agent-token', 't', '--log-pretty'], {});
    await vi.waitFor(() => expect(controller.output()).toMatch(/INFO.*listening/), { timeout: 20_000 });
    expect(controller.output().trimStart().startsWith('{')).toBe(false);
    const agent = start('seedwire-agent', ['--controller', 'ws://127.0.0.1:1/agent', '--token', 't', '--state-dir', join(dir, 'agent'), '--log-pretty'], {});
    await vi.waitFor(() => expect(agent.output()).toMatch(/INFO.*agent starting/), { timeout: 20_000 });
    expect(agent.output().trimStart().startsWith('{')).toBe(false);
  });
});
