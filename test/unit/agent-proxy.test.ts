/**
 * Which proxy a dial takes (pure), checked against proxy-from-env itself for the environment's
 * rules, and the `proxy` config key's validation.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { getProxyForUrl } from 'proxy-from-env';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../agent/config/load.js';
import { captureProxyEnv, chooseProxy, describeProxy, describeTunnelFailure, envProxyFor, readProxyCredentials, resolveProxySettings, type ProxyEnv } from '../../agent/connection/proxy.js';

const silent = pino({ level: 'silent' });
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** proxy-from-env reads process.env; run it with exactly `env` (and nothing npm put there). */
function referenceProxyFor(url: string, env: ProxyEnv): string {
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (/proxy/i.test(key)) delete process.env[key];
  Object.assign(process.env, env);
  try {
    // the library maps ws/wss to its own variables (WS_PROXY); the agent asks for the http(s) equivalent
    return getProxyForUrl(url.replace(/^ws/, 'http'));
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

function ours(url: string, env: ProxyEnv): string {
  return envProxyFor(new URL(url), env)?.value ?? '';
}

describe('the environment decides like proxy-from-env', () => {
  const P = 'http://proxy.corp:3128';
  const cases: Array<[string, ProxyEnv]> = [
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P }],
    ['wss://ctl.example.com/agent', { HTTP_PROXY: P }],
    ['ws://ctl.example.com:7070/agent', { HTTP_PROXY: P }],
    ['ws://ctl.example.com:7070/agent', { HTTPS_PROXY: P }],
    ['ws://ctl.example.com/agent', { ALL_PROXY: P }],
    ['wss://ctl.example.com/agent', { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, NO_PROXY: 'ctl.example.com' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, NO_PROXY: '.example.com' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, NO_PROXY: '*.example.com' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, NO_PROXY: 'example.com' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, NO_PROXY: 'other.org, ctl.example.com:443' }],
    ['wss://ctl.example.com:8443/agent', { HTTPS_PROXY: P, NO_PROXY: 'ctl.example.com:443' }],
    ['ws://10.0.0.5:7070/agent', { HTTP_PROXY: P, NO_PROXY: '10.0.0.5' }],
    ['ws://[fd00::5]:7070/agent', { HTTP_PROXY: P, NO_PROXY: '[fd00::5]' }],
    ['ws://CTL.Example.com/agent', { HTTP_PROXY: P, NO_PROXY: 'ctl.example.com' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, NO_PROXY: '*' }],
    ['wss://ctl.example.com/agent', { HTTPS_PROXY: P, no_proxy: 'x.org', NO_PROXY: 'ctl.example.com' }],
  ];
  it.each(cases)('%s with %j', (url, env) => {
    expect(ours(url, env)).toBe(referenceProxyFor(url, env));
  });

  it('agrees on generated hosts and NO_PROXY lists', () => {
    const label = fc.constantFrom('ctl', 'db', 'example', 'corp', 'a', 'ctl-1');
    const host = fc.array(label, { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
    const entry = fc.oneof(host, host.map((h) => `.${h}`), host.map((h) => `*.${h}`), fc.tuple(host, fc.constantFrom(80, 443, 7070)).map(([h, p]) => `${h}:${p}`), fc.constant('*'));
    fc.assert(
      fc.property(host, fc.constantFrom('ws', 'wss'), fc.constantFrom('', ':7070', ':443'), fc.array(entry, { maxLength: 4 }), fc.constantFrom(', ', ',', ' '), (h, scheme, port, entries, sep) => {
        const url = `${scheme}://${h}${port}/agent`;
        const env: ProxyEnv = { HTTPS_PROXY: 'http://s:1', HTTP_PROXY: 'http://p:2', NO_PROXY: entries.join(sep) };
        expect(ours(url, env)).toBe(referenceProxyFor(url, env));
      }),
      { numRuns: 300 },
    );
  });
});

describe('chooseProxy', () => {
  it('the config key wins over the environment, NO_PROXY included', () => {
    const settings = resolveProxySettings({ url: 'http://cfg.proxy:8080' }, { HTTPS_PROXY: 'http://env:1', NO_PROXY: '*' }, silent);
    expect(chooseProxy('wss://ctl/agent', settings)).toMatchObject({ source: 'proxy.url', credentials: null });
    expect(chooseProxy('wss://ctl/agent', settings)?.url.href).toBe('http://cfg.proxy:8080/');
  });

  it('takes credentials from the variable but never shows them', () => {
    const route = chooseProxy('wss://ctl/agent', resolveProxySettings(undefined, { HTTPS_PROXY: 'http://al%40ice:p%3Ass@proxy:3128' }, silent));
    expect(route?.credentials).toEqual({ username: 'al@ice', password: 'p:ss' });
    expect(route?.source).toBe('HTTPS_PROXY');
    expect(route?.url.href).toBe('http://proxy:3128/');
    expect(describeProxy(route!.url)).toBe('http://proxy:3128');
  });

  it('a variable without a scheme is an http proxy (as curl reads it)', () => {
    expect(chooseProxy('wss://ctl/agent', resolveProxySettings(undefined, { HTTPS_PROXY: 'proxy:3128' }, silent))?.url.href).toBe('http://proxy:3128/');
  });

  it('no variable, or NO_PROXY naming the controller: a direct dial', () => {
    expect(chooseProxy('wss://ctl/agent', resolveProxySettings(undefined, {}, silent))).toBeNull();
    expect(chooseProxy('ws://ctl:7070/agent', resolveProxySettings(undefined, { HTTP_PROXY: 'http://p:1', NO_PROXY: 'ctl' }, silent))).toBeNull();
  });

  it('a bad proxy variable stops start-up naming it', () => {
    expect(() => resolveProxySettings(undefined, { HTTPS_PROXY: 'socks5://p:1080' }, silent)).toThrow(/HTTPS_PROXY: the proxy must be http:\/\/ or https:\/\//);
  });

  it('captures only the proxy variables', () => {
    expect(captureProxyEnv({ PATH: '/bin', https_proxy: 'http://p:1', NO_PROXY: 'x', HTTP_PROXY: '' })).toEqual({ https_proxy: 'http://p:1', NO_PROXY: 'x' });
  });

  it('a refusal names the proxy, the controller and the status', () => {
    const route = chooseProxy('wss://ctl:443/agent', resolveProxySettings(undefined, { HTTPS_PROXY: 'http://u:secret@proxy:3128' }, silent))!;
    const message = describeTunnelFailure({ route, status: 407, statusText: 'Proxy Authentication Required' }, 'wss://ctl:443/agent');
    expect(message).toBe('proxy http://proxy:3128 refused the tunnel to ctl: 407 Proxy Authentication Required');
    expect(describeTunnelFailure({ route, status: null, statusText: '' }, 'ws://ctl:7070/agent', new Error('connect ECONNREFUSED 10.0.0.1:3128'))).toBe(
      'cannot open a tunnel through proxy http://proxy:3128 to ctl:7070: connect ECONNREFUSED 10.0.0.1:3128',
    );
    expect(message).not.toContain('secret');
  });
});

describe('proxy config key', () => {
  const base = { controller: 'wss://ctl/agent', token: 't' };
  it('accepts url and credentialsFile', () => {
    expect(validateConfig({ ...base, proxy: { url: 'http://proxy:3128', credentialsFile: '/etc/seedwire/proxy-credentials' } }).proxy).toEqual({ url: 'http://proxy:3128', credentialsFile: '/etc/seedwire/proxy-credentials' });
  });
  it.each([
    [{ url: 'socks5://proxy:1080' }, 'proxy.url: must be an http:// or https:// URL'],
    [{ url: 'http://user:pw@proxy:3128' }, 'proxy.url: must not carry credentials'],
    [{ url: 'http://proxy:3128', credentialsFile: 'relative' }, 'proxy.credentialsFile: must be an absolute path'],
    [{ url: 'http://proxy:3128', user: 'x' }, 'proxy.user: unknown key'],
    [{}, 'proxy.url: required'],
  ])('refuses %j', (proxy, message) => {
    expect(() => validateConfig({ ...base, proxy })).toThrow(message);
  });

  it('reads user:password from the credentials file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-proxy-'));
    dirs.push(dir);
    const file = join(dir, 'creds');
    writeFileSync(file, 'alice:pa:ss word\n', { mode: 0o600 });
    expect(readProxyCredentials(file, silent)).toEqual({ username: 'alice', password: 'pa:ss word' });
    writeFileSync(file, 'no-colon\n');
    expect(() => readProxyCredentials(file, silent)).toThrow('config error at proxy.credentialsFile: ' + file + ' must hold one line user:password');
    expect(() => readProxyCredentials(join(dir, 'missing'), silent)).toThrow(/proxy.credentialsFile: cannot read .*ENOENT/);
  });

  it('warns when the credentials file is readable by others, without the secret', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-proxy-'));
    dirs.push(dir);
    const file = join(dir, 'creds');
    writeFileSync(file, 'alice:hunter2\n');
    chmodSync(file, 0o644);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    readProxyCredentials(file, log);
    expect(lines.join('')).toContain('readable by other users');
    expect(lines.join('')).toContain('0644');
    expect(lines.join('')).not.toContain('hunter2');
  });
});
