/**
 * /metrics as Prometheus itself reads it: `promtool check metrics` (Debian's `prometheus` package)
 * parses and lints the exposition of a real controller with a connected agent, after an
 * operation, a refused seed and an event viewer have touched every family.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { missingTools } from '../helpers/requirements.js';
import { seedApi } from '../helpers/seed-api.js';

const skip = missingTools(['promtool']);
const TOKEN = 'promtool-token';

function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', ['check', 'metrics'], (error, stdout, stderr) => {
      const code = error && typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : error ? -1 : 0;
      if (error && code === -1) return reject(error);
      resolve({ code, output: `${stdout}${stderr}`.trim() });
    });
    child.stdin?.end(text);
  });
}

describe.skipIf(skip)('/metrics through promtool', () => {
  let controller: RunningController;
  const { op, agentsReady } = seedApi(() => controller);

  beforeAll(async () => {
    controller = await startController({ agentToken: TOKEN });
    startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'prom-1', config: { customCommands: { hi: 'echo hi' } } });
    await agentsReady(['prom-1']);
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
  });

  it('passes `promtool check metrics` with no lint problem, and carries the fleet families', async () => {
    await op('prom-1', 'hostname');
    await op('prom-1', 'custom-command', { name: 'hi' });
    // A refused seed moves the seed families without running one.
    const refused = await controller.api('POST', '/api/seeds', { source: 'prom-1', target: 'prom-1' });
    expect(refused.status).toBe(409);
    const res = await controller.api('GET', '/metrics');
    expect(res.status).toBe(200);
    const text = await res.text();
    const check = await promtoolCheck(text);
    expect(check.output).toBe('');
    expect(check.code).toBe(0);
    for (const family of ['seedwire_agents_connected', 'seedwire_operations_ended_total', 'seedwire_heartbeat_rtt_seconds', 'seedwire_event_loop_delay_seconds']) {
      expect(text).toContain(`# TYPE ${family} `);
    }
  });
});
