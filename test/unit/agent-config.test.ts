import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveDatacenter, loadConfig } from '../../agent/config/load.js';
import { resolveTiming } from '../../agent/connection/timing.js';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-config-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, text: string): { file: string; dir: string } {
  const dir = tempDir();
  const file = join(dir, name);
  writeFileSync(file, text);
  return { file, dir };
}

function configErrorOf(fn: () => unknown): SeedwireError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SeedwireError);
    expect((error as SeedwireError).code).toBe('SEEDWIRE_CONFIG');
    return error as SeedwireError;
  }
  throw new Error('expected a config error');
}

describe('loadConfig', () => {
  it('loads YAML, decides id, datacenter and an absolute, created stateDir', () => {
    const { file, dir } = writeConfig('agent.yaml', 'controller: ws://ctl:7070/agent\ntoken: t1\nstateDir: state/agent\ncustomCommands:\n  flush: mysqladmin flush-logs\n');
    const config = loadConfig({ file, hostname: 'db-7.dc1', cwd: dir, env: {} });
    expect(config).toMatchObject({ controller: ['ws://ctl:7070/agent'], token: 't1', id: 'db-7.dc1', hostname: 'db-7.dc1', datacenter: null, stateDir: join(dir, 'state/agent') });
    expect(statSync(config.stateDir).isDirectory()).toBe(true);
    expect(config.customCommands).toEqual({ flush: 'mysqladmin flush-logs' });
    expect(config.allowArbitraryCommands).toBe(false);
  });

  it('lets flags override the file, and SEEDWIRE_AGENT_TOKEN stand in for --token', () => {
    const dir = tempDir();
    const { file } = writeConfig('agent.json', JSON.stringify({ controller: 'ws://a/agent', token: 'file-token', id: 'file-id', stateDir: dir }));
    const config = loadConfig({ file, flags: { controller: 'wss://b/agent', id: 'flag-id', datacenter: 'dc9' }, env: { SEEDWIRE_AGENT_TOKEN: 'env-token' }, hostname: 'h', cwd: dir });
    expect(config).toMatchObject({ controller: ['wss://b/agent'], id: 'flag-id', datacenter: 'dc9', token: 'env-token' });
    const viaFlag = loadConfig({ file, flags: { token: 'flag-token' }, env: { SEEDWIRE_AGENT_TOKEN: 'env-token' }, hostname: 'h', cwd: dir });
    expect(viaFlag.token).toBe('flag-token');
  });

  it('reads tokenFile', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'token'), 'from-file\n');
    const config = loadConfig({ flags: { controller: 'ws://a/agent', stateDir: dir }, file: writeConfig('a.json', JSON.stringify({ controller: 'ws://a/agent', tokenFile: join(dir, 'token') })).file, env: {}, hostname: 'h', cwd: dir });
    expect(config.token).toBe('from-file');
  });

  it('requires a token', () => {
    const { file, dir } = writeConfig('a.json', JSON.stringify({ controller: 'ws://a/agent' }));
    expect(configErrorOf(() => loadConfig({ file, env: {}, cwd: dir })).message).toBe('config error at token: required (or tokenFile, or SEEDWIRE_AGENT_TOKEN)');
  });

  it('names the key path of a bad value', () => {
    const { file, dir } = writeConfig('a.yaml', 'controller: ws://a/agent\ntoken: t\nmysql:\n  datadir: /var/lib/mysql\n  port: "x"\n  startCommand: a\n  stopCommand: b\n  statusCommand: c\n');
    expect(configErrorOf(() => loadConfig({ file, env: {}, cwd: dir })).message).toMatch(/^config error at mysql\.port: expected number/);
  });

  it('refuses unknown keys, nested ones included, by their path', () => {
    const top = writeConfig('a.json', JSON.stringify({ controller: 'ws://a/agent', token: 't', colour: 'blue' }));
    expect(configErrorOf(() => loadConfig({ file: top.file, env: {}, cwd: top.dir })).message).toBe('config error at colour: unknown key');
    const nested = writeConfig('b.json', JSON.stringify({ controller: 'ws://a/agent', token: 't', advanced: { heartbeatMS: 5 } }));
    expect(configErrorOf(() => loadConfig({ file: nested.file, env: {}, cwd: nested.dir })).message).toBe('config error at advanced.heartbeatMS: unknown key');
  });

  it('takes advanced.handshakeTimeoutMs over the protocol default, and refuses one under 500 ms', () => {
    const set = writeConfig('h.json', JSON.stringify({ controller: 'ws://a/agent', token: 't', advanced: { handshakeTimeoutMs: 2_000 } }));
    expect(resolveTiming(loadConfig({ file: set.file, env: {}, cwd: set.dir })).handshakeTimeoutMs).toBe(2_000);
    const unset = writeConfig('u.json', JSON.stringify({ controller: 'ws://a/agent', token: 't' }));
    expect(resolveTiming(loadConfig({ file: unset.file, env: {}, cwd: unset.dir })).handshakeTimeoutMs).toBe(LIMITS.handshakeTimeoutMs);
    const low = writeConfig('l.json', JSON.stringify({ controller: 'ws://a/agent', token: 't', advanced: { handshakeTimeoutMs: 100 } }));
    expect(configErrorOf(() => loadConfig({ file: low.file, env: {}, cwd: low.dir })).message).toMatch(/^config error at advanced\.handshakeTimeoutMs/);
  });

  it('refuses a token in the controller URL and a non-ws URL', () => {
    expect(configErrorOf(() => loadConfig({ flags: { controller: 'ws://a/agent?token=abc', token: 't' }, env: {}, cwd: tempDir() })).message).toMatch(/^config error at controller: must not carry a token/);
    expect(configErrorOf(() => loadConfig({ flags: { controller: 'http://a/agent', token: 't' }, env: {}, cwd: tempDir() })).message).toMatch(/^config error at controller: must be a ws/);
  });

  it('takes a list of controllers from YAML, JSON or repeated --controller flags, in order', () => {
    const yaml = writeConfig('a.yaml', 'controller:\n  - wss://c1.example:7070/agent\n  - wss://c2.example:7070/agent\ntoken: t\n');
    expect(loadConfig({ file: yaml.file, env: {}, cwd: yaml.dir }).controller).toEqual(['wss://c1.example:7070/agent', 'wss://c2.example:7070/agent']);
    const json = writeConfig('a.json', JSON.stringify({ controller: ['ws://b/agent', 'ws://a/agent'], token: 't' }));
    expect(loadConfig({ file: json.file, env: {}, cwd: json.dir }).controller).toEqual(['ws://b/agent', 'ws://a/agent']);
    // Flags replace the file's list whole.
    expect(loadConfig({ file: json.file, flags: { controller: ['ws://x/agent', 'ws://y/agent'] }, env: {}, cwd: json.dir }).controller).toEqual(['ws://x/agent', 'ws://y/agent']);
    // A list of one is the string form.
    const one = writeConfig('b.json', JSON.stringify({ controller: ['ws://a/agent'], token: 't' }));
    const str = writeConfig('c.json', JSON.stringify({ controller: 'ws://a/agent', token: 't' }));
    expect(loadConfig({ file: one.file, env: {}, cwd: one.dir, hostname: 'h' })).toEqual(loadConfig({ file: str.file, env: {}, cwd: one.dir, hostname: 'h' }));
    expect(loadConfig({ flags: { controller: ['ws://a/agent'], token: 't' }, env: {}, cwd: one.dir, hostname: 'h' })).toEqual(loadConfig({ flags: { controller: 'ws://a/agent', token: 't' }, env: {}, cwd: one.dir, hostname: 'h' }));
  });

  it('names the list entry that is wrong: its scheme, a token in it, a repeat, an empty list', () => {
    const errorFor = (controller: unknown): string => {
      const { file, dir } = writeConfig('a.json', JSON.stringify({ controller, token: 't' }));
      return configErrorOf(() => loadConfig({ file, env: {}, cwd: dir })).message;
    };
    expect(errorFor(['ws://a/agent', 'http://b/agent'])).toBe('config error at controller.1: must be a ws:// or wss:// URL');
    expect(errorFor(['ws://a/agent', 'ws://b/agent?access_token=x'])).toMatch(/^config error at controller\.1: must not carry a token/);
    expect(errorFor(['ws://a/agent', 'ws://b/agent', 'ws://a:80/agent'])).toBe('config error at controller.2: repeats controller.0 (ws://a:80/agent)');
    expect(errorFor([])).toBe('config error at controller: must list at least one controller URL');
    expect(errorFor({ url: 'ws://a/agent' })).toBe('config error at controller: must be a ws:// or wss:// URL or a list of them');
    expect(errorFor(undefined)).toBe('config error at controller: required');
    expect(configErrorOf(() => loadConfig({ flags: { controller: ['ws://a/agent', 'ftp://b'], token: 't' }, env: {}, cwd: tempDir() })).message).toBe('config error at controller.1: must be a ws:// or wss:// URL');
  });

  it('derives the datacenter from datacenterPattern applied to the host name', () => {
    const { file, dir } = writeConfig('a.json', JSON.stringify({ controller: 'ws://a/agent', token: 't', datacenterPattern: '^[a-z]+-(\\w+)-' }));
    expect(loadConfig({ file, env: {}, cwd: dir, hostname: 'db-fra1-07' }).datacenter).toBe('fra1');
    expect(loadConfig({ file, env: {}, cwd: dir, hostname: 'standalone' }).datacenter).toBeNull();
    expect(deriveDatacenter(undefined, 'db-fra1-07')).toBeNull();
    const bad = writeConfig('b.json', JSON.stringify({ controller: 'ws://a/agent', token: 't', datacenterPattern: '(' }));
    expect(configErrorOf(() => loadConfig({ file: bad.file, env: {}, cwd: bad.dir })).message).toBe('config error at datacenterPattern: must be a valid regular expression');
  });

  it('refuses files that are not YAML or JSON', () => {
    const { file, dir } = writeConfig('a.toml', 'x = 1');
    expect(configErrorOf(() => loadConfig({ file, env: {}, cwd: dir })).message).toMatch(/expected a \.yaml, \.yml or \.json file/);
  });
});
