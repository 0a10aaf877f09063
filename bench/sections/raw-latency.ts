/** Raw protocol calls: an in-process controller's hub.call to a real agent (no HTTP, no store). */
import { randomBytes } from 'node:crypto';
import { measureLatency, startAgent, waitUntil } from '../harness.js';
import { makeTemp, removeTemp, stopTracked } from '../procs.js';
import type { BenchSection } from '../section.js';

export const rawLatencySection: BenchSection = {
  key: 'raw',
  title: 'raw protocol call latency (in-process controller)',
  async run(ctx) {
    const { createController } = await import('../../server-stub/app.js');
    const agentToken = randomBytes(16).toString('hex');
    const dataDir = makeTemp('seedwire-benchrun-inproc-');
    const controller = await createController({ dataDir, adminToken: randomBytes(16).toString('hex'), agentToken });
    const agent = startAgent('raw-agent', { controller: controller.wsUrl, token: agentToken, id: 'bench-raw' });
    try {
      await waitUntil('the raw agent to connect', 20_000, async () => controller.deps.hub.isConnected('bench-raw'));
      ctx.results.latency.raw = await measureLatency(ctx.env.ops, ctx.env.warmup, async () => {
        await controller.deps.hub.call('bench-raw', 'hostname', {});
      });
    } finally {
      await stopTracked(agent);
      await controller.close();
      removeTemp(dataDir);
    }
  },
};
