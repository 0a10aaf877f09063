#!/usr/bin/env node
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
import { consolePlugin } from './console-routes.js';
import { createSeedPlugin } from './seed/plugin.js';
import { ensureAdminTokenFile } from './store/admin-token.js';

const HELP = `Usage: seedwire-controller [flags]

  --listen HOST:PORT        where to listen (default 127.0.0.1:7070; port 0 picks a free port)
  --data-dir DIR            SQLite store and admin token [SEEDWIRE_DATA_DIR] (default ./.seedwire/controller)
  --agent-token TOKEN       token agents present [SEEDWIRE_AGENT_TOKEN] (required unless --agent-tokens)
  --agent-tokens FILE       JSON {agentId: token} of per-agent tokens
  --admin-token TOKEN       bearer token for /api, /metrics, the console [SEEDWIRE_ADMIN_TOKEN]
                            (generated into DATA_DIR/admin-token when absent)
  --tls-cert FILE --tls-key FILE   serve https and wss
  --heartbeat-ms MS         ping interval (default ${LIMITS.heartbeatMs})
  --dead-after-ms MS        silence before an agent link is dropped (default ${LIMITS.deadAfterMs})
  --log-pretty              human-readable logs
  --help                    this text
`;

const OPTIONS = {
  listen: { type: 'string' },
  'data-dir': { type: 'string' },
  'agent-token': { type: 'string' },
  'agent-tokens': { type: 'string' },
  'admin-token': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  'dead-after-ms': { type: 'string' },
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

function readFileFlag(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw configError(key, `cannot read ${path}: ${(error as Error).message}`);
  }
}

interface Parsed {
  help: boolean;
  pretty: boolean;
  options: Omit<CreateControllerOptions, 'adminToken'> & { adminToken: string | null };
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
  if (values.help) return { help: true, pretty: false, options: { dataDir: '', adminToken: null } };
  const listen = parseListen(values.listen ?? '127.0.0.1:7070');
  const dataDir = resolve(values['data-dir'] ?? env('SEEDWIRE_DATA_DIR') ?? './.seedwire/controller');
  const agentTokens = values['agent-tokens'] ? readAgentTokens(values['agent-tokens']) : undefined;
  const agentToken = values['agent-token'] ?? env('SEEDWIRE_AGENT_TOKEN') ?? null;
  if (agentToken === null && !agentTokens) throw configError('--agent-token', 'required (or SEEDWIRE_AGENT_TOKEN, or --agent-tokens FILE)');
  if (agentToken === '') throw configError('--agent-token', 'must not be empty');
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw configError(values['tls-cert'] ? '--tls-key' : '--tls-cert', 'give both --tls-cert and --tls-key');
  const tls = values['tls-cert'] && values['tls-key'] ? { cert: readFileFlag('--tls-cert', values['tls-cert']), key: readFileFlag('--tls-key', values['tls-key']) } : null;
  const heartbeatMs = parseMs('--heartbeat-ms', values['heartbeat-ms']);
  const deadAfterMs = parseMs('--dead-after-ms', values['dead-after-ms']);
  const adminToken = values['admin-token'] ?? env('SEEDWIRE_ADMIN_TOKEN') ?? null;
  if (adminToken === '') throw configError('--admin-token', 'must not be empty');
  return {
    help: false,
    pretty: values['log-pretty'] ?? false,
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
    },
  };
}

function createLogger(pretty: boolean): Logger {
  const redact = {
    paths: ['token', '*.token', 'adminToken', 'agentToken', 'agentTokens', 'authorization', '*.authorization', 'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'],
    censor: '[redacted]',
  };
  if (pretty) return pino({ redact, transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY } } });
  return pino({ redact, base: { pid: process.pid, name: 'seedwire-controller' } });
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
  const log = createLogger(parsed.pretty);
  let adminToken = parsed.options.adminToken;
  try {
    if (adminToken === null) {
      const file = ensureAdminTokenFile(parsed.options.dataDir);
      adminToken = file.token;
      log.info({ path: file.path, generated: file.generated }, 'admin token file');
    }
  } catch (error) {
    process.stderr.write(`seedwire-controller: SEEDWIRE_CONFIG: --data-dir: cannot write the admin token: ${(error as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  let controller;
  try {
    controller = await createController({ ...parsed.options, adminToken, log, plugins: [createSeedPlugin(), consolePlugin] });
  } catch (error) {
    const failure = toSeedwireError(error, 'SEEDWIRE_CONFIG');
    log.fatal({ code: failure.code, err: error }, 'controller failed to start');
    process.stderr.write(`seedwire-controller: ${failure.code}: ${failure.message}\n`);
    process.exitCode = 1;
    return;
  }
  log.info({ url: controller.url, wsUrl: controller.wsUrl, dataDir: parsed.options.dataDir, version: VERSION }, 'listening');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    controller
      .close()
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((error: unknown) => {
        log.error({ err: error }, 'drain failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`seedwire-controller: SEEDWIRE_INTERNAL: ${(error as Error).message ?? String(error)}\n`);
  process.exit(1);
});
