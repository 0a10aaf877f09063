/**
 * Writes a controller database as a release leaves it, for the upgrade test
 * (test/integration/store-upgrade.test.ts): a real controller and three real agents from a
 * built tree (`npm run build`), driven only through the HTTP API, then stopped cleanly and the
 * database copied with VACUUM INTO.
 *
 *   npx tsx scripts/make-db-fixture.ts [--dist DIR] --out test/fixtures/controller-RELEASE.sqlite
 *
 * Next to it goes FILE.src-credential.json: agent `src`'s credential, so a test can start `src`
 * again and show the stored credential still admits it.
 *
 * To capture an older release, build that release in a worktree of its own and point --dist at
 * its dist/ (this script only talks to the processes, so it works with any release's build):
 *
 *   git worktree add /tmp/old <commit> && (cd /tmp/old && ln -s "$PWD/node_modules" . && npm run build)
 *   npx tsx scripts/make-db-fixture.ts --dist /tmp/old/dist --out test/fixtures/controller-<release>.sqlite
 *
 * What the database then holds: agents `src` and `dst` (enrolled) and `gone` (revoked);
 * operations that succeeded, failed with an exit code, were refused by the agent and canceled,
 * with stdout and stderr output; the audit of all of it; four cold seeds (succeeded, failed
 * mid-transfer, aborted mid-transfer, and one left `running` at stage `transfer` by the clean
 * stop, so the next start resumes it); their throughput series.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const { values } = parseArgs({ options: { dist: { type: 'string', default: 'dist' }, out: { type: 'string' } }, strict: true });
if (!values.out) {
  process.stderr.write('usage: make-db-fixture.ts [--dist DIR] --out FILE.sqlite\n');
  process.exit(2);
}
const dist = resolve(values.dist);
const out = resolve(values.out);
for (const bin of ['server-stub/main.js', 'agent/main.js']) {
  if (!existsSync(join(dist, bin))) throw new Error(`${join(dist, bin)} is missing: run npm run build (in the release's tree) first`);
}

const AGENT_TOKEN = 'fixture-agent-token';
const ADMIN_TOKEN = 'fixture-admin-token';
const work = mkdtempSync(join(tmpdir(), 'seedwire-fixture-'));
const children = new Set<ChildProcess>();

interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function spawnNode(script: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [script, ...args], { cwd: work, env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const lines: Array<Record<string, unknown>> = [];
  let pending = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log record
      }
    }
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => {
    children.delete(child);
    done(code);
  }));
  return { child, lines, exited };
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let baseUrl = '';
async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? null : JSON.parse(text)) as T };
}

interface Seed {
  id: string;
  state: string;
  stage: string | null;
  bytesDone: number;
}

async function seedState(id: string): Promise<Seed> {
  return (await api<Seed>('GET', `/api/seeds/${id}`)).body;
}

async function startSeed(request: Record<string, unknown>): Promise<string> {
  const created = await api<{ seed: { id: string } }>('POST', '/api/seeds', request);
  if (created.status !== 202) throw new Error(`seed refused: ${JSON.stringify(created.body)}`);
  return created.body.seed.id;
}

async function midTransfer(id: string): Promise<void> {
  await until(`seed ${id} mid-transfer`, async () => {
    const s = await seedState(id);
    return s.stage === 'transfer' && s.bytesDone > 0 ? true : undefined;
  });
}

async function ended(id: string): Promise<Seed> {
  return until(`seed ${id} to end`, async () => {
    const s = await seedState(id);
    return s.state === 'running' || s.state === 'pending' ? undefined : s;
  }, 120_000);
}

function service(flag: string): Record<string, string> {
  return { startCommand: `touch ${flag}`, stopCommand: `rm -f ${flag}`, statusCommand: `test -f ${flag}` };
}

function startAgent(id: string, config: Record<string, unknown>): Proc {
  const file = join(work, `${id}.json`);
  const full = {
    controller: `${baseUrl.replace(/^http/, 'ws')}/agent`,
    tokenFile: join(work, 'agent-token'),
    id,
    stateDir: join(work, `${id}-state`),
    advanced: { startupJitterMs: 0, reconnectBaseMs: 50, reconnectCapMs: 500 },
    ...config,
  };
  writeFileSync(file, JSON.stringify(full, null, 2));
  return spawnNode(join(dist, 'agent/main.js'), ['--config', file], {});
}

async function connected(id: string): Promise<void> {
  await until(`agent ${id} connected`, async () => {
    const a = await api<{ connected?: boolean; facts?: unknown }>('GET', `/api/agents/${id}`);
    return a.status === 200 && a.body.connected === true && a.body.facts ? true : undefined;
  });
}

async function stop(proc: Proc): Promise<void> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGTERM');
  await proc.exited;
}

async function main(): Promise<void> {
  const dataDir = join(work, 'data');
  writeFileSync(join(work, 'agent-token'), AGENT_TOKEN, { mode: 0o600 });
  writeFileSync(join(work, 'admin-token'), ADMIN_TOKEN, { mode: 0o600 });
  const src = join(work, 'src');
  const dst = join(work, 'dst');
  mkdirSync(join(src, 'shop'), { recursive: true });
  mkdirSync(dst);
  // 16 MiB: big enough that a capped seed is still transferring when it is interrupted.
  for (let i = 0; i < 4; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(4 * 1024 * 1024));
  writeFileSync(join(src, 'ibdata1'), randomBytes(64 * 1024));
  const srcRunning = join(work, 'src.running');
  const dstRunning = join(work, 'dst.running');
  writeFileSync(srcRunning, '');

  const controller = spawnNode(join(dist, 'server-stub/main.js'), ['--listen', '127.0.0.1:0', '--data-dir', dataDir, '--agent-token-file', join(work, 'agent-token'), '--admin-token-file', join(work, 'admin-token')], {});
  const listening = await until('the controller to listen', () => controller.lines.find((l) => l['msg'] === 'listening'));
  baseUrl = String(listening['url']);

  const commands = { greet: 'echo "hello from $(hostname)"; echo "a warning" >&2', fail: 'echo "about to fail"; echo "it failed" >&2; exit 3', slow: 'echo started; sleep 60' };
  const agents = [
    startAgent('src', { datacenter: 'dc-east', mysql: { datadir: src, ...service(srcRunning) }, customCommands: commands }),
    startAgent('dst', { datacenter: 'dc-west', mysql: { datadir: dst, ...service(dstRunning) }, customCommands: commands }),
  ];
  const gone = startAgent('gone', { datacenter: 'dc-east' });
  await Promise.all(['src', 'dst', 'gone'].map(connected));

  // Operations: succeeded, failed with an exit code, refused by the agent, refused by the controller, canceled.
  const run = async (agent: string, op: string, params: Record<string, unknown> = {}, wait = 60): Promise<{ status: number; body: unknown }> => {
    const answer = await api('POST', `/api/agents/${agent}/ops/${op}?wait=${wait}`, { params });
    process.stdout.write(`op ${agent} ${op}: ${answer.status}\n`);
    return answer;
  };
  await run('src', 'hostname');
  await run('src', 'custom-command', { name: 'greet' });
  await run('dst', 'custom-command', { name: 'fail' });
  await run('dst', 'exec', { command: 'id' });
  await run('gone', 'mysql-status');
  await run('src', 'no-such-op');
  const slow = (await run('src', 'custom-command', { name: 'slow' }, 0)).body as { operation: { id: string } };
  await until('the slow command to print', async () => ((await (await fetch(`${baseUrl}/api/operations/${slow.operation.id}/output?follow=0`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text()).includes('started') ? true : undefined));
  await api('POST', `/api/operations/${slow.operation.id}/cancel`);

  await stop(gone);
  await api('POST', '/api/agents/gone/revoke');

  // Seed 1 succeeds (the target's MySQL left stopped).
  const s1 = await startSeed({ source: 'src', target: 'dst', method: 'cold', startTarget: false });
  if ((await ended(s1)).state !== 'succeeded') throw new Error(`seed ${s1} did not succeed`);
  // Seed 2 fails: MySQL starts on the target mid-transfer.
  const s2 = await startSeed({ source: 'src', target: 'dst', method: 'cold', compression: 'gzip', maxBytesPerSec: 2 * 1024 * 1024 });
  await midTransfer(s2);
  writeFileSync(dstRunning, '');
  if ((await ended(s2)).state !== 'failed') throw new Error(`seed ${s2} did not fail`);
  await run('dst', 'mysql-stop');
  // Seed 3 is aborted mid-transfer.
  const s3 = await startSeed({ source: 'src', target: 'dst', method: 'cold', maxBytesPerSec: 2 * 1024 * 1024 });
  await midTransfer(s3);
  await api('POST', `/api/seeds/${s3}/abort`);
  if ((await ended(s3)).state !== 'aborted') throw new Error(`seed ${s3} was not aborted`);
  // Seed 4 is left running mid-transfer by a clean stop: a later start resumes it.
  const s4 = await startSeed({ source: 'src', target: 'dst', method: 'cold', maxBytesPerSec: 1024 * 1024 });
  await midTransfer(s4);
  // A few throughput samples, and progress the store has committed (it writes at most once a second).
  await until('throughput samples of the running seed', async () => {
    const t = await api<{ samples?: unknown[] } | null>('GET', `/api/seeds/${s4}/throughput`);
    return (t.body?.samples?.length ?? 0) >= 3 ? true : undefined;
  });
  const reader = new Database(join(dataDir, 'seedwire.db'), { readonly: true });
  try {
    await until('committed progress of the running seed', () => {
      const row = reader.prepare('SELECT bytes_done FROM seeds WHERE id = ?').get(s4) as { bytes_done: number } | undefined;
      return (row?.bytes_done ?? 0) > 0 ? true : undefined;
    });
  } finally {
    reader.close();
  }

  await stop(controller);
  await Promise.all(agents.map(stop));

  rmSync(out, { force: true });
  const db = new Database(join(dataDir, 'seedwire.db'));
  db.exec(`VACUUM INTO '${out.replaceAll("'", "''")}'`);
  db.close();
  copyFileSync(join(work, 'src-state', 'credential.json'), out.replace(/\.sqlite$/, '.src-credential.json'));
  process.stdout.write(`${out}: seeds ${[s1, s2, s3, s4].join(' ')}\n`);
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
