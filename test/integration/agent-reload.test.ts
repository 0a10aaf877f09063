/**
 * SIGHUP on a real agent process: customCommands, allowArbitraryCommands and logLevel change
 * without a restart and the change is logged; a change to a key that needs a restart is refused
 * with the key named, and nothing of that reload is applied.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeTempDir, startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { seedApi } from '../helpers/seed-api.js';

const TOKEN = 'reload-token';

interface OpJson {
  state: string;
  error: { code: string; message: string } | null;
  exitCode: number | null;
  outputTail: string;
}

describe('SIGHUP reloads the agent config', () => {
  let controller: RunningController;
  let agent: AgentProcess;
  let datadir: string;
  const { api } = seedApi(() => controller);

  async function op(name: string, params: Record<string, unknown>): Promise<OpJson> {
    const res = await api<{ operation: OpJson }>('POST', `/api/agents/reloaded/ops/${name}?wait=60`, { params });
    expect(res.status).toBe(200);
    return res.body.operation;
  }

  function editConfig(change: (config: Record<string, unknown>) => void): void {
    const config = JSON.parse(readFileSync(agent.configFile, 'utf8')) as Record<string, unknown>;
    change(config);
    writeFileSync(agent.configFile, JSON.stringify(config, null, 2));
  }

  async function hangUp(): Promise<{ msg: string; [key: string]: unknown }> {
    const from = agent.logs.items.length;
    agent.child.kill('SIGHUP');
    return agent.logs.waitFor((l) => /^config reload/.test(l.msg), { fromIndex: from, timeoutMs: 10_000, what: 'a config reload line' });
  }

  beforeAll(async () => {
    controller = await startController({ agentToken: TOKEN });
    datadir = makeTempDir('sw-reload-data-');
    agent = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'reloaded',
      config: {
        customCommands: { hello: 'echo hello' },
        mysql: { datadir, startCommand: 'true', stopCommand: 'true', statusCommand: 'false' },
      },
    });
    await agent.waitForLog((l) => l.msg === 'connected', { timeoutMs: 20_000 });
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
  });

  it('adds a custom command, allows exec and changes the log level; the new command then runs', async () => {
    const before = await op('custom-command', { name: 'greet' });
    expect(before.error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect((await op('exec', { command: 'true' })).error?.code).toBe('SEEDWIRE_OP_REFUSED');

    editConfig((c) => {
      c['customCommands'] = { hello: 'echo hello', greet: 'echo greetings-after-reload' };
      c['allowArbitraryCommands'] = true;
      c['logLevel'] = 'debug';
    });
    const line = await hangUp();
    expect(line.msg).toMatch(/^config reloaded/);
    expect(line['changed']).toEqual(['allowArbitraryCommands', 'customCommands.greet', 'logLevel']);

    const greet = await op('custom-command', { name: 'greet' });
    expect(greet.state).toBe('succeeded');
    expect(greet.exitCode).toBe(0);
    expect(greet.outputTail).toContain('greetings-after-reload');
    expect((await op('exec', { command: 'echo arbitrary' })).outputTail).toContain('arbitrary');
    // Facts carry the command names, so the console and the API see the new one too.
    await vi.waitFor(async () => {
      const detail = (await api<{ facts: { customCommands: string[] } }>('GET', '/api/agents/reloaded')).body;
      expect(detail.facts.customCommands).toContain('greet');
    }, { timeout: 10_000, interval: 100 });

    // The level is applied: at warn, a call no longer logs its info lines (the reload line itself still shows).
    const callLines = (): number => agent.logs.items.filter((l) => l.msg === 'call started').length;
    expect(callLines()).toBeGreaterThan(0);
    editConfig((c) => {
      c['logLevel'] = 'warn';
    });
    expect((await hangUp())['changed']).toEqual(['logLevel']);
    const before2 = callLines();
    expect((await op('custom-command', { name: 'hello' })).state).toBe('succeeded');
    expect(callLines()).toBe(before2);
  });

  it('refuses a reload that changes mysql.datadir or the controller URL, naming them, and applies none of it', async () => {
    editConfig((c) => {
      (c['mysql'] as Record<string, unknown>)['datadir'] = join(datadir, 'elsewhere');
      c['controller'] = 'ws://127.0.0.1:1/agent';
      c['customCommands'] = { hello: 'echo hello', greet: 'echo greetings-after-reload', late: 'echo too-late' };
    });
    const line = await hangUp();
    expect(line.msg).toMatch(/^config reload refused: controller, mysql\.datadir cannot change without a restart/);
    expect(line['keys']).toEqual(['controller', 'mysql.datadir']);
    expect((await op('custom-command', { name: 'late' })).error?.code).toBe('SEEDWIRE_OP_REFUSED');
    expect((await op('custom-command', { name: 'greet' })).state).toBe('succeeded');
  });

  it('keeps the running config when the file no longer parses', async () => {
    writeFileSync(agent.configFile, '{ not json');
    const line = await hangUp();
    expect(line.msg).toMatch(/^config reload failed; the running config stays: .*not valid JSON/);
    expect((await op('custom-command', { name: 'greet' })).state).toBe('succeeded');
  });
});
