#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=2
/**
 * `npx seedwire-controller`: parses flags (env as fallback), starts the controller, drains on
 * SIGTERM/SIGINT. Bad flags: one line on stderr and exit code 2.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pino, { type Logger } from 'pino';
import { SeedwireError, toSeedwireError } from '../shared/errors.js';
import { LIMITS } from '../shared/limits.js';
import { VERSION } from '../shared/version.js';
import { createController, type CreateControllerOptions } from './app.js';
import { checkAdvertiseUrl } from './cluster/cluster.js';
import { parseBusUrl } from './cluster/link.js';
import { consolePlugin } from './console-routes.js';
import { createSeedPlugin } from './seed/plugin.js';
import { writeAdminTokenFile } from './store/admin-token.js';
import { openStore, redactUrl } from './store/open.js';
import type { Store } from './store/types.js';

const HELP = `Usage: seedwire-controller [flags]

  --listen HOST:PORT        where to listen (default 127.0.0.1:7070; port 0 picks a free port)
  --data-dir DIR            SQLite store and admin token [SEEDWIRE_DATA_DIR] (default ./.seedwire/controller)
  --store postgres://...    keep everything in this PostgreSQL database instead of SQLite
                            (cluster mode) [SEEDWIRE_STORE]; a password in the URL is never logged
  --agent-token-file FILE   enrollment token new agents present [SEEDWIRE_AGENT_TOKEN]
                            (required unless --agent-tokens); each new agent id enrolls once and
                            then uses its own credential
  --agent-token TOKEN       the same, on the command line (visible in ps; prefer the file or env)
  --agent-tokens FILE       JSON {agentId: token} of per-agent tokens
  --admin-token-file FILE   bearer token for /api, /metrics, the console [SEEDWIRE_ADMIN_TOKEN]
                            (generated into DATA_DIR/admin-token when absent)
  --admin-token TOKEN       the same, on the command line (visible in ps; prefer the file or env)
  --tls-cert FILE --tls-key FILE   serve https and wss
  --tls-client-ca FILE      verify agents' client certificates against this CA; a verified
                            certificate's CN (or DNS SAN) is the agent id
  --heartbeat-ms MS         ping interval (default ${LIMITS.heartbeatMs})
  --dead-after-ms MS        silence before an agent link is dropped (default ${LIMITS.deadAfterMs})
  --bus nats://HOST:PORT    cluster mode: route operations and events between controllers over NATS
                            [SEEDWIRE_BUS] (credentials may be in the URL; they are never logged)
  --advertise-url URL       where agents and peer controllers reach this one (default: the
                            listening URL; only with --bus)
  --log-level LEVEL         fatal, error, warn, info, debug or trace [SEEDWIRE_LOG_LEVEL] (default
                            info); the start, admin token, draining and stopped lines are
                            written at any level
  --log-pretty              human-readable logs
  --help                    this text
`;

const OPTIONS = {
  listen: { type: 'string' },
  'data-dir': { type: 'string' },
  store: { type: 'string' },
  'agent-token': { type: 'string' },
  'agent-token-file': { type: 'string' },
  'agent-tokens': { type: 'string' },
  'admin-token': { type: 'string' },
  'admin-token-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  'dead-after-ms': { type: 'string' },
  bus: { type: 'string' },
  'advertise-url': { type: 'string' },
  'log-level': { type: 'string' },
  'log-pretty': { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

function configError(key: string, message: string): SeedwireError {
  return new SeedwireError('SEEDWIRE_CONFIG', `${key}: ${message}`);
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw configError('--listen', `expected HOST:PORT, got '${value}'`);
  return { host: (match[1] ?? match[2])!, port };
}

function parseMs(key: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw configError(key, `a positive number of milliseconds, got '${value}'`);
  return Number(value);
}

function readAgentTokens(path: string): Record<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw configError('--agent-tokens', `cannot read JSON from ${path}: ${(error as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw configError('--agent-tokens', 'expected a JSON object {agentId: token}');
  const tokens: Record<string, string> = {};
  for (const [agentId, token] of Object.entries(raw)) {
    if (typeof token !== 'string' || token.length === 0) throw configError(`--agent-tokens.${agentId}`, 'a non-empty string');
    tokens[agentId] = token;
  }
  if (Object.keys(tokens).length === 0) throw configError('--agent-tokens', 'names no agent');
  return tokens;
}

/** A token file: its first line, trimmed; an empty file is an error. */
function readTokenFile(key: string, path: string): string {
  const token = readFileFlag(key, path).toString('utf8').trim();
  if (token === '') throw configError(key, `${path} is empty`);
  return token;
}

/**
 * A token from its file flag, its inline flag, or the environment (in that order; file and flag
 * together are refused). `inline` is set when it came from the command line, visible in `ps`.
 */
function resolveToken(values: { file: string | undefined; flag: string | undefined }, names: { file: string; flag: string }, fromEnv: string | undefined): { token: string | null; inline: boolean } {
  if (values.file !== undefined && values.flag !== undefined) throw configError(names.file, `give ${names.file} or ${names.flag}, not both`);
  if (values.file !== undefined) return { token: readTokenFile(names.file, values.file), inline: false };
  if (values.flag !== undefined) {
    if (values.flag === '') throw configError(names.flag, 'must not be empty');
    return { token: values.flag, inline: true };
  }
  return { token: fromEnv ?? null, inline: false };
}

function readFileFlag(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw configError(key, `cannot read ${path}: ${(error as Error).message}`);
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** --log-level / SEEDWIRE_LOG_LEVEL: one of pino's levels (the agent's config takes the same). */
export function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined) return 'info';
  const level = LOG_LEVELS.find((l) => l === value);
  if (!level) throw configError('--log-level', `expected one of ${LOG_LEVELS.join(', ')}, got '${value}'`);
  return level;
}

interface Parsed {
  help: boolean;
  pretty: boolean;
  logLevel: LogLevel;
  /** Flags that carried a secret on the command line (warned about once at start). */
  inlineSecrets: string[];
  options: Omit<CreateControllerOptions, 'adminToken' | 'store'> & { adminToken: string | null };
  /** --store: a PostgreSQL URL, or null for SQLite in the data dir. */
  store: string | null;
}

/** --store: only PostgreSQL URLs (SQLite is the default, in --data-dir). */
export function parseStore(value: string | undefined): string | null {
  if (value === undefined) return null;
  if (!/^postgres(ql)?:\/\/[^/]/.test(value)) throw configError('--store', `expected postgres://USER@HOST:PORT/DATABASE, got '${redactUrl(value)}'`);
  return value;
}

function parseCommandLine(argv: string[], processEnv: NodeJS.ProcessEnv): Parsed {
  // An empty environment variable counts as unset.
  const env = (name: string): string | undefined => (processEnv[name] === '' ? undefined : processEnv[name]);
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', (error as Error).message);
  }
  if (values.help) return { help: true, pretty: false, logLevel: 'info', inlineSecrets: [], store: null, options: { dataDir: '', adminToken: null } };
  const logLevel = parseLogLevel(values['log-level'] ?? env('SEEDWIRE_LOG_LEVEL'));
  const listen = parseListen(values.listen ?? '127.0.0.1:7070');
  const dataDir = resolve(values['data-dir'] ?? env('SEEDWIRE_DATA_DIR') ?? './.seedwire/controller');
  const store = parseStore(values.store ?? env('SEEDWIRE_STORE'));
  const agentTokens = values['agent-tokens'] ? readAgentTokens(values['agent-tokens']) : undefined;
  const agent = resolveToken({ file: values['agent-token-file'], flag: values['agent-token'] }, { file: '--agent-token-file', flag: '--agent-token' }, env('SEEDWIRE_AGENT_TOKEN'));
  const agentToken = agent.token;
  if (agentToken === null && !agentTokens) throw configError('--agent-token-file', 'required (or SEEDWIRE_AGENT_TOKEN, or --agent-tokens FILE)');
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw configError(values['tls-cert'] ? '--tls-key' : '--tls-cert', 'give both --tls-cert and --tls-key');
  if (values['tls-client-ca'] && !values['tls-cert']) throw configError('--tls-client-ca', 'needs --tls-cert and --tls-key (client certificates exist only over TLS)');
  const tls =
    values['tls-cert'] && values['tls-key']
      ? {
          cert: readFileFlag('--tls-cert', values['tls-cert']),
          key: readFileFlag('--tls-key', values['tls-key']),
          ...(values['tls-client-ca'] ? { clientCa: readFileFlag('--tls-client-ca', values['tls-client-ca']) } : {}),
        }
      : null;
  const heartbeatMs = parseMs('--heartbeat-ms', values['heartbeat-ms']);
  const deadAfterMs = parseMs('--dead-after-ms', values['dead-after-ms']);
  const admin = resolveToken({ file: values['admin-token-file'], flag: values['admin-token'] }, { file: '--admin-token-file', flag: '--admin-token' }, env('SEEDWIRE_ADMIN_TOKEN'));
  const adminToken = admin.token;
  const bus = values.bus ?? env('SEEDWIRE_BUS') ?? null;
  if (bus !== null) parseBusUrl(bus);
  const advertiseUrl = values['advertise-url'] ?? null;
  if (advertiseUrl !== null) {
    if (bus === null) throw configError('--advertise-url', 'only with --bus (cluster mode)');
    checkAdvertiseUrl(advertiseUrl);
  }
  const inlineSecrets = [...(agent.inline ? ['--agent-token'] : []), ...(admin.inline ? ['--admin-token'] : [])];
  return {
    help: false,
    pretty: values['log-pretty'] ?? false,
    logLevel,
    inlineSecrets,
    store,
    options: {
      host: listen.host,
      port: listen.port,
      dataDir,
      agentToken,
      ...(agentTokens ? { agentTokens } : {}),
      adminToken,
      tls,
      ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
      ...(deadAfterMs === undefined ? {} : { deadAfterMs }),
      bus,
      advertiseUrl,
    },
  };
}

async function createLogger(pretty: boolean, level: LogLevel): Promise<Logger> {
  const redact = {
    paths: ['token', '*.token', 'adminToken', 'agentToken', 'agentTokens', 'authorization', '*.authorization', 'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'],
    censor: '[redacted]',
  };
  // Synchronous writes, as the agent's. pino's default buffered destination (and a transport's
  // worker) flushes on exit with a loop that retries a write to a closed stdout for ever
  // (sonic-boom's flushSync on EPIPE): a controller whose log reader had gone (a dead pipe, a
  // stopped `tee`, the parent of `make demo` killed) never stopped on SIGTERM.
  if (pretty) {
    const { default: prettyStream } = await import('pino-pretty'); // loaded only for humans at a terminal
    return pino({ redact, level }, prettyStream({ sync: true, colorize: process.stdout.isTTY }));
  }
  return pino({ redact, level, base: { pid: process.pid, name: 'seedwire-controller' } }, pino.destination({ fd: 1, sync: true }));
}

async function main(): Promise<void> {
  let parsed: Parsed;
  try {
    parsed = parseCommandLine(process.argv.slice(2), process.env);
  } catch (error) {
    const failure = toSeedwireError(error, 'SEEDWIRE_CONFIG');
    process.stderr.write(`seedwire-controller: ${failure.code}: ${failure.message}\n`);
    process.exitCode = 2;
    return;
  }
  if (parsed.help) {
    process.stdout.write(HELP);
    return;
  }
  const log = await createLogger(parsed.pretty, parsed.logLevel);
  // The lines a supervisor, a script or an operator waits for (listening, where the admin token
  // is, draining, stopped) are written whatever the level.
  const lifecycle = log.isLevelEnabled('info') ? log : log.child({}, { level: 'info' });
  if (parsed.inlineSecrets.length > 0) {
    // Any local user can read a process's command line (ps, /proc/PID/cmdline).
    log.warn(
      { flags: parsed.inlineSecrets, instead: parsed.inlineSecrets.map((flag) => `${flag}-file FILE or ${flag === '--agent-token' ? 'SEEDWIRE_AGENT_TOKEN' : 'SEEDWIRE_ADMIN_TOKEN'}`) },
      'a token was given on the command line, where every local user can read it; use a token file or the environment instead',
    );
  }
  let store: Store;
  try {
    store = await openStore({ dataDir: parsed.options.dataDir, url: parsed.store, log });
  } catch (error) {
    const failure = toSeedwireError(error, 'SEEDWIRE_CONFIG');
    log.fatal({ code: failure.code, err: failure.message }, 'controller failed to start');
    process.stderr.write(`seedwire-controller: ${failure.code}: ${failure.message}\n`);
    process.exitCode = 1;
    return;
  }
  let adminToken = parsed.options.adminToken;
  try {
    if (adminToken === null) {
      const kept = await store.adminToken.ensure();
      adminToken = kept.token;
      // With PostgreSQL the token lives in the database (every controller shares it); a copy in
      // the data dir serves the command line and scripts on this host.
      const path = kept.path ?? writeAdminTokenFile(parsed.options.dataDir, kept.token);
      lifecycle.info({ path, generated: kept.generated, store: store.kind }, 'admin token file');
    }
  } catch (error) {
    await store.close();
    process.stderr.write(`seedwire-controller: SEEDWIRE_CONFIG: --data-dir: cannot write the admin token: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  let controller;
  try {
    controller = await createController({ ...parsed.options, store, adminToken, log, plugins: [createSeedPlugin(), consolePlugin] });
  } catch (error) {
    const failure = toSeedwireError(error, 'SEEDWIRE_CONFIG');
    log.fatal({ code: failure.code, err: error }, 'controller failed to start');
    await store.close().catch(() => undefined); // idempotent; an open pool would keep the process alive
    process.stderr.write(`seedwire-controller: ${failure.code}: ${failure.message}\n`);
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    lifecycle.info({ signal }, 'draining');
    controller
      .close()
      .then(() => {
        lifecycle.info('stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, 'drain failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Last: whoever waits for this line (a supervisor, a test) may send SIGTERM at once.
  lifecycle.info({ url: controller.url, wsUrl: controller.wsUrl, dataDir: parsed.options.dataDir, store: store.location, version: VERSION }, 'listening');
}

main().catch((error: unknown) => {
  process.stderr.write(`seedwire-controller: SEEDWIRE_INTERNAL: ${(error as Error).message ?? String(error)}\n`);
  process.exit(1);
});
