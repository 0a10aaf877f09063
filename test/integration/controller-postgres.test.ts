/**
 * The controller process on PostgreSQL (`SEEDWIRE_STORE`, as an operator would set it): a real
 * agent connects, an operation runs with output, the controller restarts, and the agent, the
 * operation with its output and the audit rows are all there again, read from PostgreSQL. The
 * data dir holds no SQLite database; no log line holds the URL's password.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'agent-token-postgres-test';
const skip = missingPostgres();
let server: PostgresServer | null = null;
const controllers: RunningController[] = [];

beforeAll(async () => {
  if (!skip) server = await startPostgres();
}, 60_000);

afterAll(async () => {
  await stopAllAgents();
  await stopAllControllers();
  for (const c of controllers.splice(0)) c.cleanup();
  await server?.stop();
});

interface OperationView {
  id: string;
  state: string;
  exitCode: number | null;
  outputTail: string;
}

describe.skipIf(skip !== null)('controller on PostgreSQL', () => {
  it('keeps agents, operations with their output and the audit across a restart', async () => {
    const url = await server!.createDatabase(`controller_${process.pid}`);
    const first = await startController({ agentToken: AGENT_TOKEN, env: { SEEDWIRE_STORE: url } });
    controllers.push(first);
    const listening = await first.waitForLog((r) => r.msg === 'listening');
    expect(listening['store']).toBe(url.replace(':pg-test-secret@', ':redacted@'));
    expect(existsSync(join(first.dataDir, 'seedwire.db'))).toBe(false);

    startAgent({ controllerUrl: first.wsUrl, token: AGENT_TOKEN, id: 'pg-agent', config: { allowArbitraryCommands: true, advanced: { reconnectBaseMs: 200, reconnectCapMs: 1_000 } } });
    await waitFor(async () => {
      const agents = (await (await first.api('GET', '/api/agents')).json()) as Array<{ id: string; connected: boolean }>;
      return agents.some((a) => a.id === 'pg-agent' && a.connected);
    }, { timeoutMs: 30_000, what: 'the agent to connect' });

    const ran = await first.api('POST', '/api/agents/pg-agent/ops/exec?wait=30', { params: { command: 'echo out-line; echo err-line >&2; exit 3' } });
    expect(ran.status).toBe(200);
    const { operation } = (await ran.json()) as { operation: OperationView };
    expect(operation).toMatchObject({ state: 'succeeded', exitCode: 3 }); // the command ran; its exit code is its result
    const outputBefore = await (await first.api('GET', `/api/operations/${operation.id}/output?follow=0`)).text();
    expect(outputBefore).toContain('out-line\n');
    expect(outputBefore).toContain('err-line\n');

    const second = await first.restart();
    controllers.push(second);
    // The generated admin token is kept in PostgreSQL (every controller of a cluster shares it).
    const database = new URL(url).pathname.slice(1);
    expect(await server!.query(database, `SELECT value FROM controller_secrets WHERE name = 'admin-token'`)).toEqual([{ value: first.adminToken }]);
    await waitFor(async () => {
      const agents = (await (await second.api('GET', '/api/agents')).json()) as Array<{ id: string; connected: boolean }>;
      return agents.some((a) => a.id === 'pg-agent' && a.connected);
    }, { timeoutMs: 30_000, what: 'the agent to reconnect' });

    const again = (await (await second.api('GET', `/api/operations/${operation.id}`)).json()) as OperationView;
    expect(again).toMatchObject({ id: operation.id, state: 'succeeded', exitCode: 3 });
    expect(again.outputTail).toContain('err-line');
    expect(await (await second.api('GET', `/api/operations/${operation.id}/output?follow=0`)).text()).toBe(outputBefore);
    const audit = (await (await second.api('GET', '/api/audit?limit=100')).json()) as Array<{ action: string; outcome: string; agentId: string | null }>;
    expect(audit).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'op:exec', outcome: 'started', agentId: 'pg-agent' }),
        expect.objectContaining({ action: 'op:exec', outcome: 'succeeded', agentId: 'pg-agent' }),
        expect.objectContaining({ action: 'agent:enroll', outcome: 'succeeded', agentId: 'pg-agent' }),
      ]),
    );
    // The operation still runs on the new process too.
    const next = await second.api('POST', '/api/agents/pg-agent/ops/hostname?wait=30');
    expect(((await next.json()) as { operation: OperationView }).operation.state).toBe('succeeded');

    for (const c of [first, second]) expect(c.output()).not.toContain('pg-test-secret');
  }, 120_000);

  it('refuses a --store that is not a PostgreSQL URL, in one line, without its password', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server-stub/main.ts', '--store', 'mysql://u:hunter2@db/x'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, SEEDWIRE_AGENT_TOKEN: AGENT_TOKEN, SEEDWIRE_STORE: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual([`seedwire-controller: SEEDWIRE_CONFIG: --store: expected postgres://USER@HOST:PORT/DATABASE, got 'mysql://u:redacted@db/x'`]);
  });
});
