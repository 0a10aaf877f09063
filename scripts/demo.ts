/**
 * `make demo`: the main job on one machine, unattended. A controller, two agents and two real
 * MariaDB instances (the source loaded with data); seeds the target from the source through the
 * controller, compares CHECKSUM TABLE on every table, and leaves the console running.
 * SEEDWIRE_DEMO_EXIT=1: exit 0 once the seed succeeded and the tables match, non-zero otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { ApiClient, ApiError, type SeedView } from '../client/api.js';
import { createMariaDB, type MariaDB } from '../test/helpers/mariadb.js';
import { NODE_FLAGS } from '../shared/node-flags.js';

const root = resolve(import.meta.dirname, '..');
const demoDir = resolve(process.env['SEEDWIRE_DEMO_DIR'] ?? `${root}/.seedwire/demo`);
const listen = process.env['SEEDWIRE_DEMO_LISTEN'] ?? '127.0.0.1:7070';
const rows = Number(process.env['SEEDWIRE_DEMO_ROWS'] ?? 200_000);
const exitWhenDone = process.env['SEEDWIRE_DEMO_EXIT'] === '1';

const children: ChildProcess[] = [];
const databases: MariaDB[] = [];

function say(line: string): void {
  process.stdout.write(`[demo] ${line}\n`);
}

/** Starts a node process from dist/, resolving with the first log record that matches. */
function startProcess(name: string, args: string[], ready: (rec: Record<string, unknown>) => boolean): Promise<{ child: ChildProcess; record: Record<string, unknown> }> {
  const logFile = `${demoDir}/${name}.log`;
  const child = spawn(process.execPath, [...NODE_FLAGS, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
  children.push(child);
  const log: string[] = [];
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      log.push(line);
      writeFileSync(logFile, `${line}\n`, { flag: 'a' });
      try {
        const rec = JSON.parse(line) as Record<string, unknown>;
        if (ready(rec)) resolvePromise({ child, record: rec });
      } catch {
        // not JSON: kept in the log file
      }
    });
    child.stderr!.on('data', (d: Buffer) => writeFileSync(logFile, d, { flag: 'a' }));
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready; see ${logFile}`)));
  });
}

async function cleanup(): Promise<void> {
  for (const child of children.reverse()) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
  for (const db of databases) await db.destroy().catch(() => undefined);
}

async function main(): Promise<number> {
  rmSync(demoDir, { recursive: true, force: true });
  mkdirSync(demoDir, { recursive: true });
  const agentToken = `demo-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;

  say('creating two MariaDB instances');
  const source = await createMariaDB({ baseDir: `${demoDir}/source-db`, serverId: 1 });
  databases.push(source);
  const target = await createMariaDB({ baseDir: `${demoDir}/target-db`, serverId: 2 });
  databases.push(target);
  await source.start();
  say(`loading ${rows} rows into each of 3 tables on the source (port ${source.port})`);
  await source.loadSampleData(rows);
  const before = await source.checksumTables();

  say(`starting the controller on ${listen}`);
  // Tokens go by file, never as flags (any local user can read a command line).
  const agentTokenPath = `${demoDir}/agent-token`;
  writeFileSync(agentTokenPath, `${agentToken}\n`, { mode: 0o600 });
  const controller = await startProcess(
    'controller',
    ['dist/server-stub/main.js', '--listen', listen, '--data-dir', `${demoDir}/controller`, '--agent-token-file', agentTokenPath],
    (r) => r['msg'] === 'listening',
  );
  const url = String(controller.record['url']);
  const adminTokenPath = `${demoDir}/controller/admin-token`;
  const adminToken = readFileSync(adminTokenPath, 'utf8').trim();
  const wsUrl = `${url.replace(/^http/, 'ws')}/agent`;
  const client = new ApiClient({ baseUrl: url, token: adminToken });

  for (const [id, db] of [['demo-source', source], ['demo-target', target]] as const) {
    const config = {
      controller: wsUrl,
      tokenFile: agentTokenPath, // the enrollment token; each agent then keeps its own credential in stateDir
      id,
      datacenter: 'dc1',
      stateDir: `${demoDir}/${id}-state`,
      mysql: { datadir: db.datadir, port: db.port, errorLog: db.errorLog, startCommand: db.startCommand, stopCommand: db.stopCommand, statusCommand: db.statusCommand },
      customCommands: {
        'show-databases': `mariadb --socket=${db.socket} -e 'SHOW DATABASES'`,
        'count-rows': `for t in t1 t2 t3; do mariadb --socket=${db.socket} -N -e "SELECT '$t', COUNT(*) FROM seedwire_sample.$t"; sleep 1; done`,
      },
      advanced: { startupJitterMs: 0 },
    };
    writeFileSync(`${demoDir}/${id}.json`, JSON.stringify(config, null, 2), { mode: 0o600 });
    await startProcess(id, ['dist/agent/main.js', '--config', `${demoDir}/${id}.json`], (r) => r['msg'] === 'connected');
    say(`agent ${id} connected`);
  }

  // Both agents' facts must have arrived before the prechecks can judge them.
  for (;;) {
    const agents = await client.agents();
    const details = await Promise.all(agents.map((a) => client.agent(a.id)));
    if (agents.filter((a) => a.connected).length >= 2 && details.every((d) => d.facts)) break;
    await new Promise((r) => setTimeout(r, 200));
  }

  say('starting a cold seed demo-source → demo-target');
  let seedId: string;
  try {
    seedId = (await client.createSeed({ source: 'demo-source', target: 'demo-target', method: 'cold' })).id;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    say(`seed refused (${error.httpStatus}): ${error.apiCode}: ${error.message}`);
    return 1;
  }
  let lastLine = '';
  let seed: SeedView;
  for (;;) {
    seed = await client.seed(seedId);
    const pct = seed.bytesTotal ? Math.min(100, Math.round((seed.bytesDone / seed.bytesTotal) * 100)) : 0;
    const rate = seed.bytesPerSec ? `${(seed.bytesPerSec / 1048576).toFixed(1)} MiB/s` : '';
    const line = `seed ${seed.state} · stage ${seed.stage} · ${pct}% ${rate}`;
    if (line !== lastLine) say(line);
    lastLine = line;
    if (!['pending', 'running'].includes(seed.state)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  for (const s of seed.stages) say(`  ${s.name.padEnd(16)} ${s.state.padEnd(10)} ${s.message ?? ''}`);
  if (seed.state !== 'succeeded') {
    say(`seed ${seed.state}: ${seed.error?.code} ${seed.error?.message}`);
    return 1;
  }
  if (seed.result?.['binlog']) say(`replication coordinates: ${JSON.stringify(seed.result['binlog'])}`);

  const after = await target.checksumTables();
  let match = before.size > 0 && before.size === after.size;
  for (const [table, sum] of before) {
    const other = after.get(table);
    say(`  CHECKSUM ${table}: source ${sum} target ${other ?? 'missing'} ${sum === other ? 'OK' : 'MISMATCH'}`);
    if (sum !== other) match = false;
  }
  say(match ? 'all tables match' : 'tables DO NOT match');
  say(`console: ${url}/   admin token: ${adminTokenPath}`);
  say(`command line: SEEDWIRE_CONTROLLER=${url} npx seedwire --token-file ${adminTokenPath} seed show ${seedId}`);
  if (exitWhenDone) return match ? 0 : 1;
  say('left running; Ctrl-C stops everything and cleans up');
  await new Promise<void>((r) => {
    process.once('SIGINT', r);
    process.once('SIGTERM', r);
  });
  return match ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  say(`failed: ${(error as Error).message}`);
} finally {
  await cleanup();
}
process.exit(code);
