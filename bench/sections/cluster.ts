/**
 * Three controllers on PostgreSQL and NATS with the simulated fleet spread over them
 * (bench/cluster.ts): RSS per controller, `hostname` routed through another controller beside the
 * same op on the holder, and a controller SIGKILLed (its agents back on the others). Needs no
 * dataset: `make bench-cluster` runs only this section.
 */
import { clusterRows, runClusterBench } from '../cluster.js';
import type { BenchSection } from '../section.js';
import { atLeast, atMost } from '../targets.js';

export const clusterSection: BenchSection = {
  key: 'cluster',
  title: 'three controllers on PostgreSQL and NATS (simulated agents)',
  needsDataset: false,
  async run(ctx) {
    const r = await runClusterBench(ctx.log);
    ctx.results.sections['cluster'] = r;
    for (const [what, value] of clusterRows(r)) ctx.log(value ? `${what}: ${value}` : what);
    if (!r) return;
    const worstRss = r.rssMiB.length === r.controllers && r.rssMiB.every((v) => v !== null) ? Math.max(...(r.rssMiB as number[])) : null;
    ctx.figure({ key: 'cluster.connectedAgents', what: `agents connected to ${r.controllers} controllers (of ${r.agents})`, value: r.connected, unit: '', target: atLeast(r.agents) });
    // The target is in MB (10^6 bytes); /proc gives KiB.
    ctx.figure({ key: 'cluster.rssMB', what: `RSS per controller, ${r.agentsPerController} agents each (the largest)`, value: worstRss === null ? null : Math.round(worstRss * 1.048576), unit: ' MB', target: atMost(400) });
    ctx.figure({ key: 'cluster.routedHostnameP50Ms', what: 'hostname routed through another controller, p50', value: r.routed?.p50Ms ?? null, unit: ' ms', target: atMost(3), note: r.local ? `on the holder: p50 ${r.local.p50Ms} ms` : null });
    ctx.figure({ key: 'cluster.routedHostnameP99Ms', what: 'hostname routed through another controller, p99', value: r.routed?.p99Ms ?? null, unit: ' ms', target: atMost(15), note: r.local ? `on the holder: p99 ${r.local.p99Ms} ms` : null });
    ctx.figure({ key: 'cluster.failoverSeconds', what: `agents of a SIGKILLed controller all back on the others (${r.failover?.victimAgents ?? 'n/a'})`, value: r.failover?.backSeconds ?? null, unit: ' s', target: atMost(60), note: r.failover && r.failover.backSeconds === null ? `only ${r.failover.back} back` : null });
    ctx.figure({
      key: 'cluster.failoverBusiestSecondPercent',
      what: 'the busiest second of their return, share of them (welcomes as the survivors sent them)',
      value: r.failover?.busiestSecondShare ?? null,
      unit: '%',
      target: atMost(10),
      note: `as the simulator read them: ${r.failover?.busiestReadSecondShare ?? 'n/a'}%`,
    });
    const seed = r.seedAdoption;
    // At least one resumed lane seen (as cluster-seed-failover.test.ts asserts), each under the bound.
    const resentOk = seed !== null && seed.resentBytes.length > 0 && seed.resentBytes.every((b) => b < seed.resendBoundBytes);
    ctx.figure({
      key: 'cluster.seedResumedSeconds',
      what: 'running seed: transfer running again after its owner was SIGKILLed',
      value: seed?.state === 'succeeded' && seed.copyOk && resentOk ? seed.resumedSeconds : null,
      unit: ' s',
      target: atMost(60),
      note: seed === null ? 'not reached' : seed.state !== 'succeeded' || !seed.copyOk ? `the seed ${seed.state ?? 'n/a'}: ${seed.note ?? seed.verified ?? ''}` : !resentOk ? `bytes sent twice: ${seed.resentBytes.join(', ') || 'no resumed lane in the log of the source agent'}` : `adopted after ${seed.adoptedSeconds} s; succeeded and verified after ${seed.endedSeconds} s`,
    });
  },
};
