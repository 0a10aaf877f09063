/** Pure parts of the SIGHUP reload and the local status: which changes apply, which need a restart. */
import { describe, expect, it } from 'vitest';
import { validateConfig, resolveConfig } from '../../agent/config/load.js';
import { diffConfig, planReload } from '../../agent/config/reload.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { buildStatus } from '../../agent/status/snapshot.js';

function configOf(value: Record<string, unknown>): AgentConfig {
  return resolveConfig(validateConfig({ controller: 'ws://ctl:7070/agent', token: 't', stateDir: '/tmp', ...value }), { hostname: 'db-1', cwd: '/' });
}

describe('config reload plan', () => {
  it('names changed leaves, customCommands one by one', () => {
    expect(diffConfig({ a: 1, b: { c: 2, d: [1] } }, { a: 1, b: { c: 3, d: [1, 2] }, e: true })).toEqual(['b.c', 'b.d', 'e']);
    const before = configOf({ customCommands: { a: 'echo a' } });
    const after = configOf({ customCommands: { a: 'echo A', b: 'echo b' }, allowArbitraryCommands: true, logLevel: 'debug' });
    expect(planReload(before, after)).toEqual({ changed: ['allowArbitraryCommands', 'customCommands.a', 'customCommands.b', 'logLevel'], needRestart: [] });
  });

  it('puts every other key, nested or not, among those needing a restart', () => {
    const mysql = { datadir: '/var/lib/mysql', startCommand: 's', stopCommand: 't', statusCommand: 'u' };
    const before = configOf({ mysql });
    const after = configOf({ mysql: { ...mysql, datadir: '/data/mysql' }, token: 'other', status: { intervalSeconds: 9 }, customCommands: { x: 'y' } });
    expect(planReload(before, after)).toEqual({ changed: ['customCommands.x'], needRestart: ['mysql.datadir', 'status.intervalSeconds', 'token'] });
    expect(planReload(before, configOf({ mysql }))).toEqual({ changed: [], needRestart: [] });
  });

  it('refuses a status endpoint that is not local to the host', () => {
    expect(() => configOf({ status: { listen: '0.0.0.0:9100' } })).toThrow(/status\.listen: must be 127\.0\.0\.1:PORT/);
    expect(configOf({ status: { listen: '[::1]:9100' } }).status).toEqual({ intervalSeconds: 5, listen: '[::1]:9100' });
    expect(configOf({}).status).toEqual({ intervalSeconds: 5 });
  });
});

describe('buildStatus', () => {
  it('separates seed calls from other operations', () => {
    const status = buildStatus(
      {
        identity: { agentId: 'a', hostname: 'h', datacenter: null, version: '1', pid: 1, bootId: 'b', startedAt: 't0', intervalSeconds: 5, controllers: ['ws://b/agent', 'ws://c/agent'] },
        link: () => ({ state: 'connected', controller: 'ws://c/agent', since: 't1', lastContactAt: 't2', sessionId: 's', sessions: 1, lastError: null }),
        calls: () => [
          { id: 'c1', op: 'exec', startedAt: 't3', seedId: undefined },
          { id: 'c2', op: 'seed-receive', startedAt: 't4', seedId: 'seed-9' },
        ],
      },
      'running',
      new Date(0),
    );
    expect(status).toMatchObject({ controller: 'ws://c/agent', controllers: ['ws://b/agent', 'ws://c/agent'] });
    expect(status.operations).toEqual([{ id: 'c1', op: 'exec', startedAt: 't3' }]);
    expect(status.seeds).toEqual([{ seedId: 'seed-9', op: 'seed-receive', callId: 'c2', startedAt: 't4' }]);
    expect(status.updatedAt).toBe('1970-01-01T00:00:00.000Z');
  });
});
