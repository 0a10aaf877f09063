/**
 * The `seedwire` command line against a real controller and two real agents (processes, real
 * sockets). The "MySQL" service is a state file and the datadirs are generated trees, so a cold
 * seed runs end to end in seconds; the source's datadir has a binlog index, so the seed reports
 * replication coordinates.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Operation, SeedView } from '../../client/api.js';
import { PROJECT_ROOT, startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';
import { seedApi } from '../helpers/seed-api.js';

const TOKEN = 'cli-agent-token';
// The CLI runs from a temp dir (so no ./.seedwire/controller/admin-token is found by accident): tsx by path.
const CLI = ['--import', pathToFileURL(join(PROJECT_ROOT, 'node_modules/tsx/dist/loader.mjs')).href, join(PROJECT_ROOT, 'cli/main.ts')];

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Each CLI run is a new node process with tsx: generous timeouts for a loaded 2-core machine.
describe('seedwire (the command line)', { timeout: 240_000 }, () => {
  let dir: string;
  let controller: RunningController;
  const { agentsReady } = seedApi(() => controller);
  const running = new Set<ReturnType<typeof spawn>>();

  /** The CLI's environment: the controller and the token file, nothing inherited that could point elsewhere. */
  function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, SEEDWIRE_CONTROLLER: controller.url };
    delete env['SEEDWIRE_ADMIN_TOKEN'];
    delete env['SEEDWIRE_DATA_DIR'];
    return { ...env, ...extra };
  }

  /** Runs the CLI to its end with stdout and stderr on pipes. */
  function cli(args: string[], env: NodeJS.ProcessEnv = cliEnv()): Promise<Run> {
    const child = spawn(process.execPath, [...CLI, '--token-file', join(controller.dataDir, 'admin-token'), ...args], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve) =>
      child.once('close', (code) => {
        running.delete(child);
        resolve({ code, stdout, stderr });
      }),
    );
  }

  function serviceCommands(name: string): Record<string, string> {
    const state = join(dir, `${name}.running`);
    return { startCommand: `touch ${state}`, stopCommand: `rm -f ${state}`, statusCommand: `test -f ${state}` };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-cli-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 4; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(2 * 1024 * 1024));
    writeFileSync(join(src, 'ibdata1'), randomBytes(256 * 1024));
    writeFileSync(join(src, 'mysql-bin.index'), './mysql-bin.000001\n./mysql-bin.000002\n');
    writeFileSync(join(src, 'mysql-bin.000001'), '');
    writeFileSync(join(src, 'mysql-bin.000002'), Buffer.alloc(4321));
    mkdirSync(join(dir, 'dst'));

    controller = await startController({ agentToken: TOKEN });
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'src', config: { datacenter: 'dc1', allowArbitraryCommands: true, mysql: { datadir: src, port: 3307, ...serviceCommands('src') } } });
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'dst', config: { datacenter: 'dc1', mysql: { datadir: join(dir, 'dst'), ...serviceCommands('dst') } } });
    await agentsReady(['src', 'dst']);
  });

  afterEach(() => {
    for (const child of running) child.kill('SIGKILL');
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 3 when the controller cannot be reached or the token is missing or wrong, 2 on bad usage', async () => {
    const port = await closedPort();
    const down = await cli(['agents'], cliEnv({ SEEDWIRE_CONTROLLER: `http://127.0.0.1:${port}` }));
    expect(down.code).toBe(3);
    expect(down.stderr).toContain(`cannot reach the controller at http://127.0.0.1:${port}: ECONNREFUSED`);

    const noToken = spawnSync(process.execPath, [...CLI, 'agents'], { cwd: dir, env: cliEnv(), encoding: 'utf8' });
    expect(noToken.status).toBe(3);
    expect(noToken.stderr).toMatch(/no admin token: give --token-file FILE, set SEEDWIRE_ADMIN_TOKEN/);

    const wrong = spawnSync(process.execPath, [...CLI, 'agents'], { cwd: dir, env: cliEnv({ SEEDWIRE_ADMIN_TOKEN: 'wrong' }), encoding: 'utf8' });
    expect(wrong.status).toBe(3);
    expect(wrong.stderr).toContain('SEEDWIRE_AUTH');

    expect((await cli(['no-such-command'])).code).toBe(2);
    expect((await cli(['agents', '--no-such-flag'])).code).toBe(2);
    const noFrom = await cli(['seed', '--to', 'dst']);
    expect(noFrom.code).toBe(2);
    expect(noFrom.stderr).toContain('--from AGENT and --to AGENT are required');
    expect((await cli(['seed', '--from', 'src', '--to', 'dst', '--max-rate', 'fast'])).stderr).toContain('--max-rate');
    expect((await cli(['agent', 'ghost'])).code).toBe(2);
  });

  it('lists agents as a table, and as the API JSON with --json', async () => {
    const table = await cli(['agents']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+DATACENTER\s+CONNECTED\s+LAST SEEN\s+MYSQL RUNNING\s+DATADIR SIZE\s+FREE$/);
    expect(lines.some((l) => /^src\s+dc1\s+yes\s+now\s+no\s+\d/.test(l))).toBe(true);

    const json = await cli(['--json', 'agents']);
    const agents = JSON.parse(json.stdout) as Array<{ id: string; connected: boolean }>;
    expect(agents.map((a) => a.id).sort()).toEqual(['dst', 'src']);

    const detail = await cli(['agent', 'src']);
    expect(detail.stdout).toMatch(/^mysql\s+stopped on port 3307$/m);
    expect(detail.stdout).toMatch(/^peers, local\s+dst$/m);
    expect((JSON.parse((await cli(['agent', 'src', '--json'])).stdout) as { peers: { local: Array<{ id: string }> } }).peers.local[0]!.id).toBe('dst');
  });

  it('op streams the output before the command ends and exits with its exit code', async () => {
    const go = join(dir, 'go');
    const child = spawn(
      process.execPath,
      [...CLI, '--token-file', join(controller.dataDir, 'admin-token'), 'op', 'src', 'exec', '--param', `command=echo started; while [ ! -f ${go} ]; do sleep 0.05; done; echo finished; exit 7`],
      { cwd: dir, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    running.add(child);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    await vi.waitFor(() => expect(stdout).toContain('started\n'), { timeout: 30_000, interval: 50 });
    expect(child.exitCode).toBeNull();
    expect(stdout).not.toContain('finished');
    writeFileSync(go, '');
    expect(await exited).toBe(7);
    expect(stdout).toBe('started\nfinished\n');

    const refused = await cli(['op', 'dst', 'exec', '--param', 'command=true']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('SEEDWIRE_OP_REFUSED');

    const status = await cli(['--json', 'op', 'src', 'mysql-status']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ agentId: 'src', op: 'mysql-status', state: 'succeeded', result: { running: false } });
    const ops = JSON.parse((await cli(['ops', '--agent', 'src', '--json'])).stdout) as Operation[];
    expect(ops.map((o) => o.op)).toContain('exec');
  });

  it('cancel ends a running op, whose own command then exits 5', async () => {
    const waiting = cli(['op', 'src', 'exec', '--param', `command=echo waiting; sleep 300`]);
    let id = '';
    await vi.waitFor(
      async () => {
        const ops = JSON.parse((await cli(['--json', 'ops', '--agent', 'src'])).stdout) as Operation[];
        id = ops.find((o) => o.state === 'running' && o.op === 'exec')?.id ?? '';
        expect(id).not.toBe('');
      },
      { timeout: 30_000, interval: 200 },
    );
    const canceled = await cli(['cancel', id]);
    expect(canceled.code).toBe(0);
    expect(canceled.stdout).toContain('canceled');
    const run = await waiting;
    expect(run.code).toBe(5);
    expect(run.stdout).toContain('waiting');
    expect(run.stderr).toContain('canceled');
  });

  it('Ctrl-C during op stops watching (130) and says how to cancel the operation, which keeps running', async () => {
    const child = spawn(process.execPath, [...CLI, '--token-file', join(controller.dataDir, 'admin-token'), 'op', 'src', 'exec', '--param', 'command=echo waiting; sleep 300'], {
      cwd: dir,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    await vi.waitFor(() => expect(stdout).toContain('waiting\n'), { timeout: 30_000, interval: 50 });
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    const id = /stopped watching operation (\S+); it keeps running \(seedwire cancel \S+ stops it\)/.exec(stderr)?.[1];
    expect(id).toBeTruthy();
    expect(JSON.parse((await cli(['--json', 'cancel', id!])).stdout)).toMatchObject({ id, state: 'canceled' });
  });

  it('a refused seed exits 4 with the reason on stderr', async () => {
    const refused = await cli(['seed', '--from', 'src', '--to', 'dst', '--method', 'snapshot']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('has no snapshot backend');
    expect(refused.stderr).toContain('SEEDWIRE_PRECHECK_FAILED');
  });

  it('seed --follow on a pipe prints plain lines, then the stage table and the CHANGE MASTER statement, and exits 0', async () => {
    const run = await cli(['seed', '--from', 'src', '--to', 'dst', '--method', 'cold', '--no-start-target', '--lanes', '2', '--follow']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain('\x1b[');
    expect(run.stdout).toMatch(/^seed \S+: running · stage \S+/m);
    expect(run.stdout).toMatch(/^STAGE\s+STATE\s+STARTED\s+TOOK\s+MESSAGE$/m);
    for (const stage of ['precheck', 'prepare-source', 'prepare-target', 'transfer', 'verify', 'finalize-target', 'cleanup-source']) {
      expect(run.stdout).toMatch(new RegExp(`^${stage}\\s+succeeded\\s`, 'm'));
    }
    expect(run.stdout).toContain('replication coordinates: file mysql-bin.000002, position 4321');
    expect(run.stdout).toMatch(/CHANGE MASTER TO MASTER_HOST='[^']+', MASTER_PORT=3307, .*MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=4321;/);
    expect(existsSync(join(dir, 'dst', 'shop', 't0.ibd'))).toBe(true);

    const id = /^seed (\S+) started/m.exec(run.stdout)![1]!;
    const shown = JSON.parse((await cli(['--json', 'seed', 'show', id])).stdout) as SeedView;
    expect(shown).toMatchObject({ id, state: 'succeeded', result: { binlog: { file: 'mysql-bin.000002', position: 4321 } } });
    const report = (await cli(['seed', 'show', id])).stdout;
    expect(report).toMatch(/^STEP \(OPERATION ID\)\s+OP\s+AGENT\s+STATE\s+EXIT\s+TOOK$/m);
    expect(report).toMatch(new RegExp(`^${id}\\.finalize-target\\s+seed-finalize-target\\s+dst\\s+succeeded\\s`, 'm'));
    const listed = JSON.parse((await cli(['seeds', '--json'])).stdout) as SeedView[];
    expect(listed.map((s) => s.id)).toContain(id);
    expect((await cli(['seeds'])).stdout).toMatch(new RegExp(`^${id}\\s+src\\s+dst\\s+cold\\s+succeeded`, 'm'));
    const audit = await cli(['audit', '--limit', '200']);
    expect(audit.stdout).toMatch(/^AT\s+ACTOR\s+AGENT\s+ACTION\s+OUTCOME\s+MESSAGE$/m);
    expect((JSON.parse((await cli(['audit', '--json'])).stdout) as unknown[]).length).toBeGreaterThan(0);
  });

  it('seed --follow in a pseudo-terminal draws a progress bar', async () => {
    if (missingTools(['script'])) return;
    const args = [...CLI, '--token-file', join(controller.dataDir, 'admin-token'), 'seed', '--from', 'src', '--to', 'dst', '--method', 'cold', '--no-start-target', '--max-rate', '2M', '--follow'];
    const command = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const run = spawnSync('script', ['-qfec', command, '/dev/null'], { cwd: dir, env: { ...cliEnv(), TERM: 'xterm' }, encoding: 'utf8', timeout: 120_000 });
    expect(run.status).toBe(0);
    // cli-progress redraws one line in place: cursor to column 1, the bar, clear to end of line.
    expect(run.stdout).toContain('\x1b[1G');
    expect(run.stdout).toMatch(/[█░]{30}\s+\d+% [\d.]+ \S+\/[\d.]+ MiB/);
    expect(run.stdout).toMatch(/· transfer · attempt 1/);
    expect(run.stdout).toMatch(/^transfer\s+succeeded\s/m);
  });
});
