/**
 * The outbound proxy of the dial-out link: which proxy (if any) carries a dial to the controller,
 * and the HTTP CONNECT agent that opens the tunnel, for ws:// and wss:// alike (a wss handshake
 * runs TLS end to end inside the tunnel; the proxy sees only host and port).
 *
 * The `proxy` config key wins over the environment. From the environment the usual variables
 * apply with the rules of proxy-from-env (what npm, axios and most Node tools follow): the
 * lower-case name before the upper-case one, HTTPS_PROXY for wss://, HTTP_PROXY for ws://,
 * ALL_PROXY for both, and NO_PROXY listing hosts (`host`, `.suffix`, `*.suffix`, `host:port`, or
 * `*`) that are dialled directly. The rules are re-implemented here over an injected environment
 * (config enters once, at start-up); test/unit/agent-proxy.test.ts checks them against the library.
 *
 * Credentials never reach a log: only `describeProxy()` (scheme, host, port) is logged.
 */
import { readFileSync, statSync } from 'node:fs';
import type { HttpsProxyAgent } from 'https-proxy-agent';
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';

/** The environment variables the agent reads for its proxy, captured once at start-up. */
export const PROXY_ENV_NAMES = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'] as const;
export type ProxyEnv = Partial<Record<(typeof PROXY_ENV_NAMES)[number], string>>;

export interface ProxyCredentials {
  username: string;
  password: string;
}

/** What decides the proxy of every dial: the config key (read at start-up) or the environment. */
export interface ProxySettings {
  configured: { url: URL; credentials: ProxyCredentials | null } | null;
  env: ProxyEnv;
}

/** The proxy one dial goes through. */
export interface ProxyRoute {
  /** Without userinfo. */
  url: URL;
  credentials: ProxyCredentials | null;
  /** `proxy.url` or the environment variable it came from; for logs. */
  source: string;
}

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

/** Keeps only the proxy variables of an environment. */
export function captureProxyEnv(env: Record<string, string | undefined>): ProxyEnv {
  const captured: ProxyEnv = {};
  for (const name of PROXY_ENV_NAMES) {
    const value = env[name];
    if (value !== undefined && value !== '') captured[name] = value;
  }
  return captured;
}

/** `scheme://host:port` of a proxy: what logs and errors show (never userinfo, path or query). */
export function describeProxy(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

function envValue(env: ProxyEnv, lower: 'https_proxy' | 'http_proxy' | 'all_proxy' | 'no_proxy'): { name: string; value: string } | null {
  const upper = lower.toUpperCase() as Uppercase<typeof lower>;
  const lowerValue = env[lower];
  if (lowerValue) return { name: lower, value: lowerValue };
  const upperValue = env[upper];
  return upperValue ? { name: upper, value: upperValue } : null;
}

/** False when NO_PROXY names this host (and port, if the entry has one): dial it directly. */
export function shouldProxy(hostname: string, port: number, noProxy: string): boolean {
  const list = noProxy.toLowerCase();
  if (!list) return true;
  if (list === '*') return false;
  const host = hostname.toLowerCase();
  return list.split(/[,\s]/).every((entry) => {
    if (!entry) return true;
    const withPort = /^(.+):(\d+)$/.exec(entry);
    const entryHost = withPort?.[1] ?? entry;
    const entryPort = withPort ? Number(withPort[2]) : 0;
    if (entryPort && entryPort !== port) return true;
    if (!/^[.*]/.test(entryHost)) return host !== entryHost;
    return !host.endsWith(entryHost.startsWith('*') ? entryHost.slice(1) : entryHost);
  });
}

/** The proxy URL the environment gives for a ws:// or wss:// target, and the variable it came from; null for a direct dial. */
export function envProxyFor(target: URL, env: ProxyEnv): { name: string; value: string } | null {
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  const port = target.port ? Number(target.port) : (DEFAULT_PORTS[target.protocol] ?? 0);
  // `host` keeps an IPv6 address's brackets, as NO_PROXY entries write them.
  const hostname = target.host.replace(/:\d*$/, '');
  if (!shouldProxy(hostname, port, envValue(env, 'no_proxy')?.value ?? '')) return null;
  return envValue(env, secure ? 'https_proxy' : 'http_proxy') ?? envValue(env, 'all_proxy');
}

/** Parses a proxy URL (a value without a scheme means http://, as curl reads it); the message names where it came from. */
export function parseProxyUrl(value: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `http://${value}`);
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error at ${source}: not a URL`, { cause: error });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error at ${source}: the proxy must be http:// or https:// (got ${url.protocol}//)`);
  }
  return url;
}

function splitCredentials(url: URL): { url: URL; credentials: ProxyCredentials | null } {
  const bare = new URL(url.href);
  bare.username = '';
  bare.password = '';
  const credentials = url.username === '' && url.password === '' ? null : { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
  return { url: bare, credentials };
}

/** Which proxy carries a dial to `target`, or null for a direct dial. */
export function chooseProxy(target: string, settings: ProxySettings): ProxyRoute | null {
  if (settings.configured) return { ...settings.configured, source: 'proxy.url' };
  const fromEnv = envProxyFor(new URL(target), settings.env);
  if (!fromEnv) return null;
  return { ...splitCredentials(parseProxyUrl(fromEnv.value, fromEnv.name)), source: fromEnv.name };
}

/** Reads `user:password` from `proxy.credentialsFile` once, at start-up (a missing file is a config error, not a redial loop). */
export function readProxyCredentials(path: string, log: Logger): ProxyCredentials {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(path, 'utf8');
    mode = statSync(path).mode;
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error at proxy.credentialsFile: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  const line = text.split('\n')[0]?.replace(/\r$/, '') ?? '';
  const colon = line.indexOf(':');
  if (colon <= 0) throw new SeedwireError('SEEDWIRE_CONFIG', `config error at proxy.credentialsFile: ${path} must hold one line user:password`);
  if ((mode & 0o077) !== 0) {
    log.warn({ file: path, mode: `0${(mode & 0o777).toString(8)}` }, 'proxy.credentialsFile is readable by other users; chmod 600 it');
  }
  return { username: line.slice(0, colon), password: line.slice(colon + 1) };
}

/** Resolves the `proxy` config key (reading its credentials file) and the captured environment. */
export function resolveProxySettings(proxy: { url: string; credentialsFile?: string | undefined } | undefined, env: ProxyEnv, log: Logger): ProxySettings {
  if (!proxy) {
    // A bad variable stops start-up naming it, rather than failing every dial later.
    for (const name of ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY'] as const) {
      const value = env[name];
      if (value !== undefined) parseProxyUrl(value, name);
    }
    return { configured: null, env };
  }
  const url = parseProxyUrl(proxy.url, 'proxy.url');
  const credentials = proxy.credentialsFile === undefined ? null : readProxyCredentials(proxy.credentialsFile, log);
  return { configured: { url, credentials }, env };
}

/** What the proxy answered to one dial's CONNECT; null until it answered. */
export interface TunnelState {
  readonly route: ProxyRoute;
  status: number | null;
  statusText: string;
}

/**
 * A CONNECT agent for one dial, recording the proxy's answer so a refusal is told apart from the
 * controller's. https-proxy-agent is loaded on first use: an agent without a proxy never pays for it.
 */
export async function openTunnel(route: ProxyRoute): Promise<{ agent: HttpsProxyAgent<string>; tunnel: TunnelState }> {
  const { HttpsProxyAgent } = await import('https-proxy-agent');
  const tunnel: TunnelState = { route, status: null, statusText: '' };
  const headers: Record<string, string> = {};
  if (route.credentials) {
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(`${route.credentials.username}:${route.credentials.password}`).toString('base64')}`;
  }
  const agent = new HttpsProxyAgent(route.url.href, { headers, keepAlive: false });
  agent.on('proxyConnect', (connect: { statusCode: number; statusText: string }) => {
    tunnel.status = connect.statusCode;
    tunnel.statusText = connect.statusText;
  });
  return { agent, tunnel };
}

/** The message for a dial the proxy refused or never answered (no 200 to CONNECT); names the proxy and its status. */
export function describeTunnelFailure(tunnel: TunnelState, target: string, error?: Error): string {
  const proxy = describeProxy(tunnel.route.url);
  const to = new URL(target).host;
  if (tunnel.status !== null && tunnel.status !== 200) return `proxy ${proxy} refused the tunnel to ${to}: ${tunnel.status} ${tunnel.statusText}`.trimEnd();
  const reason = error?.message ?? 'connection closed';
  if (/ended before receiving CONNECT response/.test(reason)) return `proxy ${proxy} closed the connection before answering CONNECT ${to}`;
  return `cannot open a tunnel through proxy ${proxy} to ${to}: ${reason}`;
}

/** For the start-up log line: the proxy a dial to `target` would take and why, without credentials; null when direct. */
export function describeProxySettings(settings: ProxySettings, target: string): { proxy: string; source: string; credentials: boolean } | null {
  let route: ProxyRoute | null;
  try {
    route = chooseProxy(target, settings);
  } catch (error) {
    return { proxy: '(invalid)', source: (error as Error).message, credentials: false };
  }
  return route ? { proxy: describeProxy(route.url), source: route.source, credentials: route.credentials !== null } : null;
}
