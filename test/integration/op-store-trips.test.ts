/**
 * What one operation costs the PostgreSQL store: a controller process on PostgreSQL with
 * `log_statement = all`, a real agent, `hostname` through the HTTP API; the statements the
 * controller sent for each operation are counted from the server's log (docs/scale-out.md,
 * "Where an operation's time goes"). A quick read-only operation is recorded in one statement
 * after its reply, and the API's answer reads nothing more.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingPostgres, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'agent-token-op-trips';
const APP = 'seedwire-trips';
const skip = missingPostgres();
let server: PostgresServer | null = null;
const controllers: RunningController[] = [];

beforeAll(async () => {
  if (skip) return;
  server = await startPostgres();
  await server.query('postgres', `ALTER SYSTEM SET log_statement = 'all'`);
  await server.query('postgres', `ALTER SYSTEM SET log_line_prefix = '%a|'`);
  await server.query('postgres', 'SELECT pg_reload_conf()');
}, 60_000);

afterAll(async () => {
  await stopAllAgents();
  await stopAllControllers();
  for (const c of controllers.splice(0)) c.cleanup();
  await server?.stop();
});

/** The controller's statements logged since `from` (its connections carry application_name APP). */
function controllerStatements(from: number, to: number): string[] {
  const text = readFileSync(join(server!.baseDir, 'postgres.log'), 'utf8').slice(from, to);
  return text.split('\n').filter((line) => line.startsWith(`${APP}|`) && /LOG:\s+(statement|execute)/.test(line));
}

describe.skipIf(skip !== null)('an operation on the PostgreSQL store', () => {
  it('records a quick hostname in one statement after its reply, and answers without another read', async () => {
    const url = `${await server!.createDatabase(`trips_${process.pid}`)}?application_name=${APP}`;
    const ctl = await startController({ agentToken: AGENT_TOKEN, env: { SEEDWIRE_STORE: url } });
    controllers.push(ctl);
    startAgent({ controllerUrl: ctl.wsUrl, token: AGENT_TOKEN, id: 'trips-agent' });
    await waitFor(async () => {
      const agents = (await (await ctl.api('GET', '/api/agents')).json()) as Array<{ id: string; connected: boolean }>;
      return agents.some((a) => a.id === 'trips-agent' && a.connected);
    }, { timeoutMs: 30_000, what: 'the agent to connect' });
    // Warm up (the pool's connections, the agent's first call).
    for (let i = 0; i < 3; i++) expect((await ctl.api('POST', '/api/agents/trips-agent/ops/hostname?wait=30')).status).toBe(200);

    // A marker statement from another connection, once it is in the log, closes an op's span.
    const mark = async (n: number): Promise<number> => {
      await server!.query('postgres', `SELECT 'mark-${n}'`);
      let at = -1;
      await waitFor(() => (at = readFileSync(join(server!.baseDir, 'postgres.log'), 'utf8').indexOf(`mark-${n}'`)) >= 0, { what: 'the marker in the log' });
      return at;
    };
    const ops = 10;
    const perOp: string[][] = [];
    const ms: number[] = [];
    for (let i = 0; i < ops; i++) {
      const from = await mark(2 * i);
      const t0 = performance.now();
      const res = await ctl.api('POST', '/api/agents/trips-agent/ops/hostname?wait=30');
      ms.push(performance.now() - t0);
      const { operation } = (await res.json()) as { operation: { id: string; state: string } };
      expect(operation.state).toBe('succeeded');
      // The row the API answered with is the one the store holds, at once.
      const stored = (await (await ctl.api('GET', `/api/operations/${operation.id}`)).json()) as { state: string };
      expect(stored.state).toBe('succeeded');
      const to = await mark(2 * i + 1);
      perOp.push(controllerStatements(from, to));
    }
    const counts = perOp.map((s) => s.length);
    console.log(`hostname on PostgreSQL: statements per op (incl. the GET) ${counts.join(' ')}; HTTP ms ${ms.map((m) => m.toFixed(1)).join(' ')}`);
    console.log(`one op's statements:\n${perOp[ops - 1]!.join('\n')}`);

    // The same op on the embedded store (SQLite), for the share PostgreSQL's round trips take.
    const embedded = await startController({ agentToken: AGENT_TOKEN });
    controllers.push(embedded);
    startAgent({ controllerUrl: embedded.wsUrl, token: AGENT_TOKEN, id: 'trips-embedded' });
    await waitFor(async () => {
      const agents = (await (await embedded.api('GET', '/api/agents')).json()) as Array<{ id: string; connected: boolean }>;
      return agents.some((a) => a.id === 'trips-embedded' && a.connected);
    }, { timeoutMs: 30_000, what: 'the second agent to connect' });
    // Phases from the controller's own log line (ms clock, same machine): request → the whole
    // record committed after the agent's reply ('operation ended': a quick read-only op logs one
    // line), → the client has the answer.
    const phases = async (target: RunningController, agentId: string): Promise<string> => {
      const samples: number[][] = [];
      for (let i = 0; i < 40; i++) {
        const t0 = Date.now();
        const p0 = performance.now();
        const res = await target.api('POST', `/api/agents/${agentId}/ops/hostname?wait=30`);
        const took = performance.now() - p0;
        const t1 = Date.now();
        const { operation } = (await res.json()) as { operation: { id: string } };
        const at = (msg: string): number => Number(target.logs.find((r) => r.msg === msg && r['opId'] === operation.id)?.['time']);
        await waitFor(() => at('operation ended') > 0, { timeoutMs: 5_000, what: 'the end log line' });
        const ended = at('operation ended');
        samples.push([took, ended - t0, t1 - ended]);
      }
      const median = (k: number): number => samples.map((s) => s[k]!).sort((a, b) => a - b)[20]!;
      return `total ${median(0).toFixed(2)} ms ≈ to the record committed ${median(1)} + reply ${median(2)} (medians over 40)`;
    };
    await phases(embedded, 'trips-embedded');
    console.log(`hostname on PostgreSQL: ${await phases(ctl, 'trips-agent')}`);
    console.log(`hostname on SQLite:     ${await phases(embedded, 'trips-embedded')}`);
    // The whole record (1: a quick read-only op), the GET's read (1); a last-seen write of the agent may land in between.
    expect(Math.min(...counts)).toBe(2);
  }, 180_000);
});
