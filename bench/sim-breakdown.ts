/**
 * What a `hostname` costs the fleet simulator (test/helpers/fleet-client.ts) per call, beside the
 * controller: one embedded controller from dist/, SEEDWIRE_SIM_AGENTS simulated agents (default
 * 3,000) in one simulator process, then N sequential `hostname` calls through the bench's lean
 * client, with each process's CPU per call. With SEEDWIRE_BENCH_PROFILE=DIR the simulator is
 * profiled over the calls (DIR/simulator.cpuprofile, through the inspector).
 *
 *   make build dist && npx tsx bench/sim-breakdown.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createLeanOps } from './lean-ops.js';
import { startFleet } from '../test/helpers/fleet-client.js';
import { cleanupAll, groupCpuMs, makeTemp, spawnTracked, stopTracked } from './procs.js';
import { NODE_FLAGS } from '../shared/node-flags.js';
import { hostnameOnce, latencyOf } from './fleet.js';
import { profileWhile } from './inspector-profile.js';
import { runBreakdown } from './breakdown-kit.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const AGENTS = Number(process.env['SEEDWIRE_SIM_AGENTS'] || 3_000);
const N = Number(process.env['N'] || 1_000);
const PROFILE_DIR = process.env['SEEDWIRE_BENCH_PROFILE'] ? resolve(process.env['SEEDWIRE_BENCH_PROFILE']) : null;

/** Each thread's name and user/system CPU ms, by thread id. */
function threads(pid: number): Map<string, { name: string; user: number; sys: number }> {
  const out = new Map<string, { name: string; user: number; sys: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name, user: Number(fields[11]) * 10, sys: Number(fields[12]) * 10 });
    } catch {
      // gone
    }
  }
  return out;
}

function threadsAfter(pid: number, before: Map<string, { name: string; user: number; sys: number }>): string {
  const after = threads(pid);
  return [...after]
    .map(([tid, t]) => ({ name: `${t.name}/${tid}`, user: t.user - (before.get(tid)?.user ?? 0), sys: t.sys - (before.get(tid)?.sys ?? 0) }))
    .filter((t) => t.user + t.sys > 0)
    .map((t) => `${t.name} user ${t.user} sys ${t.sys}`)
    .join(', ');
}

async function main(): Promise<void> {
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  const dir = makeTemp('seedwire-simbreak-');
  writeFileSync(join(dir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dir, 'admin-token'), adminToken, { mode: 0o600 });
  const ctl = spawnTracked('controller', process.execPath, [...NODE_FLAGS, join(ROOT, 'dist/server-stub/main.js'), '--listen', '127.0.0.1:0', '--data-dir', dir, '--agent-token-file', join(dir, 'agent-token'), '--admin-token-file', join(dir, 'admin-token')], { cwd: ROOT, logTo: join(dir, 'controller.log') });
  const url = String((await ctl.waitForRecord((r) => r['msg'] === 'listening', 20_000))['url']);
  const fleet = startFleet({ url: `${url.replace(/^http/, 'ws')}/agent`, token: agentToken, count: AGENTS, processes: 1, prefix: 'sim' });
  try {
    while (fleet.welcomes.size < AGENTS) await delay(200);
    await delay(3_000);
    const ops = createLeanOps(url, adminToken);
    const ids = [...fleet.welcomes.keys()];
    const pick = (i: number): string => ids[(i * 7_919) % ids.length]!;
    for (let i = 0; i < 500; i++) await hostnameOnce(ops, pick(i + N));
    const sim = fleet.pids[0]!;
    const cpu = (): Record<string, number> => ({ bench: groupCpuMs([process.pid]), controller: groupCpuMs([ctl.pid]), simulator: groupCpuMs([sim]) });
    const restBefore = cpu();
    await delay(3_000);
    const restAfter = cpu();
    process.stdout.write(`at rest, CPU ms per second: ${Object.keys(restBefore).map((k) => `${k} ${((restAfter[k]! - restBefore[k]!) / 3).toFixed(1)}`).join(', ')}\n`);
    const samples: number[] = [];
    const loop = async (): Promise<void> => {
      for (let i = 0; i < N; i++) samples.push(await hostnameOnce(ops, pick(i)));
    };
    const threadsBefore = threads(sim);
    const before = cpu();
    const t0 = performance.now();
    if (PROFILE_DIR) {
      mkdirSync(PROFILE_DIR, { recursive: true });
      await profileWhile(sim, join(PROFILE_DIR, 'simulator.cpuprofile'), loop);
    } else await loop();
    const wall = performance.now() - t0;
    const after = cpu();
    process.stdout.write(`simulator threads (CPU ms over the calls): ${threadsAfter(sim, threadsBefore)}\n`);
    process.stdout.write(`hostname on ${AGENTS} simulated agents: p50 ${latencyOf(samples)?.p50Ms} ms, ${(wall / N).toFixed(2)} ms per call; CPU ms per call: ${Object.keys(before).map((k) => `${k} ${((after[k]! - before[k]!) / N).toFixed(2)}`).join(', ')}\n`);
    ops.close();
  } finally {
    await fleet.stop();
    await stopTracked(ctl);
    await cleanupAll();
  }
}

runBreakdown('sim-breakdown', main);
