/**
 * Where a command's round trip goes (docs/performance.md, "A command's round trip"): a controller
 * and two agents from dist/ (one with its spawner, one with `advanced.spawner: false`), then, per
 * case, latency percentiles and the CPU milliseconds each process spent per call (from /proc,
 * so a loaded machine inflates the wall times far more than the CPU shares).
 *
 *   make build dist && npx tsx bench/command-breakdown.ts      (N=300 samples per case by default)
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../client/api.js';
import { runCommand } from '../agent/exec/run.js';
import { rawSpawnEchoHi, startBenchSpawner } from './command-latency.js';
import { cleanupAll, makeTemp, spawnTracked, stopTracked, type Tracked } from './procs.js';
import { AGENT_ENTRY } from './harness.js';
import { NODE_FLAGS } from '../shared/node-flags.js';
import { percentile, runBreakdown, timeCalls } from './breakdown-kit.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const N = Number(process.env['N'] || 300);
const watched: Record<string, number> = {};

/** [own CPU ms, reaped children's CPU ms] of a process (clock ticks of 10 ms). */
function cpuMs(pid: number): [number, number] {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return [(Number(f[11]) + Number(f[12])) * 10, (Number(f[13]) + Number(f[14])) * 10];
  } catch {
    return [0, 0];
  }
}

async function measure(name: string, once: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 20; i += 1) await once();
  const before = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, cpuMs(pid)]));
  const { samples, ownCpuMs } = await timeCalls(N, once);
  const cpu = Object.entries(watched).map(([k, pid]) => {
    const [a, c] = cpuMs(pid);
    const [a0, c0] = before[k]!;
    return `${k} ${((a - a0) / N).toFixed(2)}${c > c0 ? ` (+children ${((c - c0) / N).toFixed(2)})` : ''}`;
  });
  process.stdout.write(`${name.padEnd(42)} p50 ${percentile(samples, 0.5).toFixed(2)}  p99 ${percentile(samples, 0.99).toFixed(2)} ms | CPU ms per call: bench ${ownCpuMs.toFixed(2)}, ${cpu.join(', ')}\n`);
}

async function main(): Promise<void> {
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const dir = makeTemp('seedwire-breakdown-');
  writeFileSync(join(dir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dir, 'admin-token'), adminToken, { mode: 0o600 });
  const ctl = spawnTracked('controller', process.execPath, [...NODE_FLAGS, join(ROOT, 'dist/server-stub/main.js'), '--listen', '127.0.0.1:0', '--data-dir', dir, '--agent-token-file', join(dir, 'agent-token'), '--admin-token-file', join(dir, 'admin-token')]);
  const url = String((await ctl.waitForRecord((r) => r['msg'] === 'listening', 20_000))['url']);
  const client = new ApiClient({ baseUrl: url, token: adminToken });
  const agent = (id: string, advanced: Record<string, unknown>): Tracked => {
    const file = join(dir, `${id}.json`);
    const config = { controller: `${url.replace(/^http/, 'ws')}/agent`, token: agentToken, id, stateDir: join(dir, id), customCommands: { hi: 'echo hi' }, advanced: { startupJitterMs: 0, ...advanced } };
    writeFileSync(file, JSON.stringify(config));
    return spawnTracked(id, process.execPath, [...NODE_FLAGS, AGENT_ENTRY, '--config', file]);
  };
  const withSpawner = agent('with-spawner', {});
  const without = agent('no-spawner', { spawner: false });
  try {
    for (;;) {
      if ((await client.agents()).filter((a) => a.connected).length === 2) break;
      await delay(100);
    }
    await client.runOp('with-spawner', 'custom-command', { name: 'hi' }); // starts its spawner
    const ready = await withSpawner.waitForRecord((r) => r['msg'] === 'command spawner ready', 20_000);
    Object.assign(watched, { controller: ctl.pid, agent: withSpawner.pid, spawner: Number(ready['pid']), 'agent without spawner': without.pid });
    const op = async (id: string, name: string, params: Record<string, unknown>): Promise<void> => {
      const operation = await client.runOp(id, name, params);
      if (operation.state !== 'succeeded') throw new Error(`${name} on ${id}: ${operation.state} ${JSON.stringify(operation.error)}`);
    };
    process.stdout.write(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}, ${N} sequential calls per case\n`);
    await measure('hostname via HTTP', () => op('with-spawner', 'hostname', {}));
    await measure('echo hi via HTTP, agent with spawner', () => op('with-spawner', 'custom-command', { name: 'hi' }));
    await measure('echo hi via HTTP, agent without spawner', () => op('no-spawner', 'custom-command', { name: 'hi' }));
    await measure("raw spawn('bash') in this process", rawSpawnEchoHi);
    await measure('runCommand direct (execa) in this process', () => runCommand('echo hi'));
    const direct = await startBenchSpawner();
    try {
      await measure('runCommand through a spawner', direct.once);
    } finally {
      await direct.stop();
    }
  } finally {
    await Promise.allSettled([stopTracked(withSpawner), stopTracked(without)]);
    await stopTracked(ctl);
    await cleanupAll();
  }
}

runBreakdown('command-breakdown', main);
