/**
 * The controller at fleet size (bench/fleet.ts): `hostname` through HTTP with 1,000 simulated
 * agents connected, then 10,000 idle agents dialling a fresh controller (SEEDWIRE_BENCH_FLEET
 * agents; 0 skips).
 */
import { fleetRows, runFleetBench } from '../fleet.js';
import type { BenchSection } from '../section.js';
import { atMost } from '../targets.js';

export const fleetSection: BenchSection = {
  key: 'fleet',
  title: 'the controller at fleet size (simulated agents)',
  async run(ctx) {
    const r = await runFleetBench(ctx.log);
    ctx.results.sections['fleet'] = r;
    for (const [what, value] of fleetRows(r)) ctx.log(value ? `${what}: ${value}` : what);
    if (!r) return;
    ctx.figure({ key: 'fleet.hostnameP50Ms', what: `hostname via HTTP with ${r.opsAgents} agents connected, p50`, value: r.latency?.p50Ms ?? null, unit: ' ms', target: atMost(2) });
    ctx.figure({ key: 'fleet.hostnameP99Ms', what: `hostname via HTTP with ${r.opsAgents} agents connected, p99`, value: r.latency?.p99Ms ?? null, unit: ' ms', target: atMost(10) });
    ctx.figure({ key: 'fleet.connectSeconds', what: `${r.agents} idle agents all connected`, value: r.connectSeconds, unit: ' s', target: atMost(60), note: r.connectSeconds === null ? `only ${r.connected} connected` : null });
    ctx.figure({ key: 'fleet.restRssMiB', what: `controller RSS with ${r.agents} agents at rest`, value: r.controllerRestMiB, unit: ' MiB', target: atMost(1000) });
    ctx.figure({ key: 'fleet.restCpuPercent', what: `controller CPU at rest with ${r.agents} agents (heartbeats on)`, value: r.controllerRestCpuPercent, unit: '% of a core', target: atMost(5) });
  },
};
