/** The real `seedwire-controller` process: flags, logs, token file, SIGTERM, SIGKILL + restart. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CallFrame } from '../../shared/frames.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { TestPeer } from '../helpers/controller-peer.js';

const AGENT_TOKEN = 'agent-token-process-test';
const started: RunningController[] = [];
const peers: TestPeer[] = [];
/** Enrolled credentials by agent id; a peer reconnecting after a restart presents its own. */
const credentials = new Map<string, string>();

async function start(options: Parameters<typeof startController>[0] = { agentToken: AGENT_TOKEN }): Promise<RunningController> {
  const controller = await startController(options);
  started.push(controller);
  return controller;
}

function peer(controller: RunningController, agentId: string): TestPeer {
  const p = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId, credentials });
  peers.push(p);
  return p;
}

afterEach(async () => {
  credentials.clear();
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await stopAllControllers();
  for (const c of started.splice(0)) c.cleanup();
});

describe('seedwire-controller process', () => {
  it('serves /healthz without auth, refuses /api without a token with a JSON 401', async () => {
    const c = await start();
    const health = await fetch(`${c.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true });
    const refused = await fetch(`${c.url}/api/agents`);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: { code: 'SEEDWIRE_AUTH', message: expect.any(String) } });
    expect((await fetch(`${c.url}/api/agents`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${c.url}/metrics`)).status).toBe(401);
    expect((await c.api('GET', '/nowhere')).status).toBe(404);
    expect((await c.api('GET', '/api/agents')).status).toBe(200);
  });

  it('generates the admin token into DATA_DIR/admin-token (0600), logs its path, never the token', async () => {
    const c = await start();
    const path = `${c.dataDir}/admin-token`;
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(c.logs.some((r) => r['path'] === path)).toBe(true);
    const p = peer(c, 'db-1');
    await p.connect();
    await c.api('GET', '/api/agents');
    await fetch(`${c.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: c.adminToken }) });
    expect(await c.stop()).toBe(0);
    expect(c.output()).not.toContain(c.adminToken);
    expect(c.output()).not.toContain(AGENT_TOKEN);
    expect(c.logs.some((r) => r.msg === 'stopped')).toBe(true);
  });

  it('exits non-zero with one clear line on a bad flag or a missing agent token', async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'server-stub/main.ts', ...args], {
          cwd: new URL('../../', import.meta.url).pathname,
          env: { ...process.env, SEEDWIRE_AGENT_TOKEN: '' },
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('exit', (code) => resolve({ code, stderr }));
      });
    const bad = await run(['--bogus']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/SEEDWIRE_CONFIG.*--bogus/);
    const missing = await run(['--listen', '127.0.0.1:0']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/--agent-token/);
    const listen = await run(['--listen', 'nope', '--agent-token', 'x']);
    expect(listen.stderr).toMatch(/--listen/);
    const level = await run(['--log-level', 'loud', '--agent-token', 'x']);
    expect(level.code).toBe(2);
    expect(level.stderr.trim()).toBe("seedwire-controller: SEEDWIRE_CONFIG: --log-level: expected one of fatal, error, warn, info, debug, trace, got 'loud'");
  });

  it('--log-level warn (or SEEDWIRE_LOG_LEVEL) leaves out the info lines but the start, token and stop lines; a bad level is refused', async () => {
    /** Runs a `hostname` on the peer through the API, answering its call. */
    const hostname = async (c: RunningController, p: TestPeer): Promise<void> => {
      const done = c.api('POST', `/api/agents/${p.agentId}/ops/hostname`);
      const call = await p.next<CallFrame>((f) => f.t === 'call');
      p.send({ t: 'result', id: call.id, result: { hostname: p.agentId }, durationMs: 1 });
      expect((await done).status).toBe(200);
    };
    // At the default level an operation and a closed agent session are info lines.
    const loud = await start();
    const first = peer(loud, 'db-loud');
    await first.connect();
    await hostname(loud, first);
    await first.close();
    await loud.waitForLog((r) => r.msg === 'agent session closed');
    // On SQLite an operation's row is written before its call: its start and its end are logged.
    expect(loud.logs.filter((r) => r.msg === 'operation started' || r.msg === 'operation ended')).toHaveLength(2);

    for (const [i, how] of [{ extraArgs: ['--log-level', 'warn'] }, { env: { SEEDWIRE_LOG_LEVEL: 'warn' } }].entries()) {
      const quiet = await start({ agentToken: AGENT_TOKEN, ...how });
      const p = peer(quiet, `db-quiet-${i}`); // a fresh id: each controller has its own store
      await p.connect();
      await hostname(quiet, p);
      await p.close();
      expect((await quiet.api('GET', '/api/agents')).status).toBe(200);
      expect(await quiet.stop()).toBe(0);
      const info = quiet.logs.filter((r) => r.level === 30).map((r) => r.msg);
      expect(info.sort()).toEqual(['admin token file', 'draining', 'listening', 'stopped']);
      expect(quiet.logs.some((r) => r.msg === 'agent session closed')).toBe(false);
    }
  });

  it('warns once when a token arrives as a flag; --agent-token-file and --admin-token-file are read without a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-token-files-'));
    try {
      writeFileSync(join(dir, 'agent-token'), `${AGENT_TOKEN}\n`, { mode: 0o600 });
      writeFileSync(join(dir, 'admin-token'), 'admin-from-a-file\n', { mode: 0o600 });
      const quiet = await start({ agentToken: '', adminToken: 'admin-from-a-file', env: { SEEDWIRE_AGENT_TOKEN: '' }, extraArgs: ['--agent-token-file', join(dir, 'agent-token'), '--admin-token-file', join(dir, 'admin-token')] });
      expect(quiet.logs.some((r) => /command line/.test(String(r.msg)))).toBe(false);
      expect((await fetch(`${quiet.url}/api/agents`, { headers: { authorization: 'Bearer admin-from-a-file' } })).status).toBe(200);
      await peer(quiet, 'db-file').connect(); // the file's token enrolls
      const loud = await start({ agentToken: '', adminToken: 'admin-on-the-command-line', env: { SEEDWIRE_AGENT_TOKEN: '' }, extraArgs: ['--agent-token', AGENT_TOKEN, '--admin-token', 'admin-on-the-command-line'] });
      const warnings = loud.logs.filter((r) => /command line/.test(String(r.msg)));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 40, flags: ['--agent-token', '--admin-token'] });
      expect(loud.output()).not.toContain(AGENT_TOKEN);
      expect(loud.output()).not.toContain('admin-on-the-command-line');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('after SIGKILL and a restart on the same data dir, agents, operations and audit are still there and running ops resume', async () => {
    const first = await start();
    const p = peer(first, 'db-1');
    await p.connect();
    const done = first.api('POST', '/api/agents/db-1/ops/hostname');
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'result', id: call.id, result: { hostname: 'db-1' }, durationMs: 1 });
    expect((await done).status).toBe(200);
    const runningRes = await first.api('POST', '/api/agents/db-1/ops/exec?wait=0', { params: { command: 'long' } });
    const resumable = ((await runningRes.json()) as { operation: { id: string } }).operation.id;
    await p.next((f) => f.t === 'call' && f.id === resumable);
    const lostRes = await first.api('POST', '/api/agents/db-1/ops/exec?wait=0', { params: { command: 'gone' } });
    const lost = ((await lostRes.json()) as { operation: { id: string } }).operation.id;
    await p.next((f) => f.t === 'call' && f.id === lost);

    const second = await first.restart();
    started.push(second);
    await p.closed;
    const agents = (await (await second.api('GET', '/api/agents')).json()) as Array<Record<string, unknown>>;
    expect(agents).toEqual([expect.objectContaining({ id: 'db-1', connected: false })]);
    const ops = (await (await second.api('GET', '/api/operations')).json()) as Array<{ id: string; state: string }>;
    expect(ops.find((o) => o.id === call.id)?.state).toBe('succeeded');
    expect(ops.find((o) => o.id === resumable)?.state).toBe('running');
    expect(ops.find((o) => o.id === lost)?.state).toBe('running');
    const audit = (await (await second.api('GET', '/api/audit?limit=50')).json()) as Array<{ action: string }>;
    expect(audit.filter((a) => a.action === 'op:hostname')).toHaveLength(2);

    const back = peer(second, 'db-1');
    await back.connect({ pending: [resumable] });
    back.send({ t: 'result', id: resumable, result: { exitCode: 0 }, exitCode: 0, durationMs: 9 });
    await back.next((f) => f.t === 'ack');
    const resumed = (await (await second.api('GET', `/api/operations/${resumable}`)).json()) as { state: string; result: unknown };
    expect(resumed).toMatchObject({ state: 'succeeded', result: { exitCode: 0 } });
    const gone = (await (await second.api('GET', `/api/operations/${lost}`)).json()) as { state: string; error: { code: string } };
    expect(gone).toMatchObject({ state: 'failed', error: { code: 'SEEDWIRE_LOST' } });
    expect(back.frames.some((f) => f.t === 'call')).toBe(false);
    expect(await second.stop()).toBe(0);
  });
});
