/**
 * Idle agents per controller: N protocol-speaking WebSocket clients (test/helpers/controller-peer.ts)
 * against a fresh controller; connect time, the controller's RSS before and after, the listing.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { kibToMiB, startController } from '../harness.js';
import { nofileLimits, procStatusKiB, stopTracked } from '../procs.js';
import type { BenchSection } from '../section.js';
import { round } from '../targets.js';

function ensureNofile(pid: number | 'self', need: number): number {
  const limits = nofileLimits(pid);
  if (!limits) return need;
  if (limits.soft >= need) return need;
  const target = Math.min(need, limits.hard);
  try {
    const who = pid === 'self' ? process.pid : pid;
    execFileSync('prlimit', ['--pid', String(who), `--nofile=${Math.max(need, target)}:${Math.max(need, limits.hard)}`]);
    return need;
  } catch {
    return target;
  }
}

export const idleSection: BenchSection = {
  key: 'idle',
  title: 'idle agents: protocol clients against a fresh controller',
  async run(ctx) {
    const results = ctx.results;
    const { TestPeer } = await import('../../test/helpers/controller-peer.js');
    let n = ctx.env.idleAgents;
    const margin = 200;
    const selfOk = ensureNofile('self', n + margin);
    if (selfOk < n + margin) {
      n = Math.max(1, selfOk - margin);
      results.idle.note = `open-file limit of the bench process is ${selfOk}; lowered N to ${n}`;
    }
    const ctl = await startController('idle-controller');
    const agentToken = ctl.agentToken;
    const peers: Array<InstanceType<typeof TestPeer>> = [];
    try {
      const ctlOk = ensureNofile(ctl.proc.pid, n + margin);
      if (ctlOk < n + margin) {
        n = Math.max(1, ctlOk - margin);
        results.idle.note = `open-file limit of the controller is ${ctlOk}; lowered N to ${n}`;
      }
      // Settle: the first API call loads routes lazily; then read the baseline.
      await ctl.client.agents();
      await delay(1_000);
      const before = procStatusKiB(ctl.proc.pid, 'VmRSS');
      const t0 = performance.now();
      const concurrency = 50;
      let next = 0;
      const connectOne = async (): Promise<void> => {
        while (next < n) {
          const i = next;
          next += 1;
          const agentId = `idle-${String(i).padStart(5, '0')}`;
          // The controller paces new sessions (503 + Retry-After): wait and dial again, as an agent does.
          for (;;) {
            const peer = new TestPeer({ url: ctl.wsUrl, token: agentToken, agentId, hello: { hostname: `${agentId}.bench`, bootId: randomBytes(8).toString('hex'), capabilities: ['exec', 'mysql', 'snapshot', 'seed'] } });
            try {
              await peer.connect();
              peers.push(peer);
              break;
            } catch (error) {
              await peer.close();
              if ((error as { status?: number }).status !== 503) throw error;
              results.idle.paced = (results.idle.paced ?? 0) + 1;
              await delay(250 + Math.random() * 1_000);
            }
          }
        }
      };
      await Promise.all(Array.from({ length: concurrency }, connectOne));
      const connectSeconds = (performance.now() - t0) / 1000;
      await delay(2_000);
      const after = procStatusKiB(ctl.proc.pid, 'VmRSS');
      const t1 = performance.now();
      const listed = await ctl.client.agents();
      const listSeconds = (performance.now() - t1) / 1000;
      const connected = listed.filter((a) => a.id.startsWith('idle-') && a.connected).length;
      results.idle.agents = n;
      results.idle.connectSeconds = round(connectSeconds, 2);
      results.idle.controllerRssBeforeMiB = kibToMiB(before);
      results.idle.controllerRssAfterMiB = kibToMiB(after);
      results.idle.controllerRssDeltaMiB = before !== null && after !== null ? round((after - before) / 1024, 1) : null;
      results.idle.perAgentKiB = before !== null && after !== null ? round((after - before) / n, 1) : null;
      results.idle.allListed = connected === n;
      results.idle.listSeconds = round(listSeconds, 3);
      if (connected !== n) results.idle.note = `${results.idle.note ? `${results.idle.note}; ` : ''}/api/agents lists ${connected} of ${n} as connected`;
    } finally {
      await Promise.allSettled(peers.map((p) => p.close()));
      await stopTracked(ctl.proc);
    }
  },
};
