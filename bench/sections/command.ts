/**
 * A custom command `echo hi` through the API, the controller and an agent (which forks it from its
 * lean spawner), beside Node's own spawn('bash') and the spawner alone, in the same run.
 */
import { atMost } from '../targets.js';
import { measureLatency, startAgent, startController, waitForAgents } from '../harness.js';
import { rawSpawnEchoHi, startBenchSpawner } from '../command-latency.js';
import { stopTracked } from '../procs.js';
import type { BenchSection } from '../section.js';

export const commandSection: BenchSection = {
  key: 'command',
  title: 'custom command `echo hi` via HTTP, beside raw spawn and the spawner alone',
  async run(ctx) {
    const ctl = await startController('command-controller');
    const agent = startAgent('command-agent', { controller: ctl.wsUrl, token: ctl.agentToken, id: 'bench-command', customCommands: { hi: 'echo hi' } });
    try {
      await waitForAgents(ctl.client, ['bench-command'], false);
      const api = await measureLatency(ctx.env.ops, ctx.env.warmup, async () => {
        const operation = await ctl.ops.runOp('bench-command', 'custom-command', { name: 'hi' });
        if (operation.state !== 'succeeded' || operation.exitCode !== 0) throw new Error(`custom command ended ${operation.state}: ${JSON.stringify(operation.error)}`);
      });
      const rawSpawn = await measureLatency(ctx.env.ops, 20, rawSpawnEchoHi);
      const direct = await startBenchSpawner();
      let spawner;
      try {
        spawner = await measureLatency(ctx.env.ops, 20, direct.once);
      } finally {
        await direct.stop();
      }
      ctx.results.sections['command'] = { api, rawSpawn, spawner };
      ctx.log(`echo hi via HTTP p50 ${api.p50Ms} / p99 ${api.p99Ms} ms; raw spawn('bash') p50 ${rawSpawn.p50Ms} ms; the spawner alone p50 ${spawner.p50Ms} ms`);
      ctx.figure({ key: 'command.p50Ms', what: 'custom command `echo hi` via HTTP, controller and agent, p50', value: api.p50Ms, unit: ' ms', target: atMost(7), note: `raw spawn('bash') in the same run: p50 ${rawSpawn.p50Ms} ms` });
    } finally {
      await stopTracked(agent);
      await stopTracked(ctl.proc);
    }
  },
};
