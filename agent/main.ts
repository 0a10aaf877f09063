#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=2
/**
 * seedwire-agent: parse flags, load config (one clear line and a non-zero exit when either is
 * bad), create the logger once, run the daemon, drain on SIGTERM/SIGINT and exit 0.
 */
import { parseArgs } from 'node:util';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { SeedwireError, toSeedwireError } from '../shared/errors.js';
import { VERSION } from '../shared/version.js';
import { loadConfig, type ConfigFlags } from './config/load.js';
import { reloadConfig } from './config/reload.js';
import { startDaemon } from './dispatch/daemon.js';
import { buildOpRegistry } from './ops/registry.js';

const USAGE = `usage: seedwire-agent [--config FILE] [flags]

  --config FILE        agent configuration, YAML (.yaml/.yml) or JSON (.json)
  --controller URL     controller endpoint, ws:// or wss:// (overrides the file); repeat it for a
                       list of controllers, tried in order
  --token-file FILE    the controller's enrollment token, read from FILE (overrides the file's token)
  --token TOKEN        the same on the command line [env SEEDWIRE_AGENT_TOKEN]; visible in ps, prefer
                       --token-file, tokenFile in the config, or the environment
  --id ID              agent id (default: the host's name)
  --datacenter DC      datacenter name
  --state-dir DIR      ledger and resume state
  --log-pretty         human-readable logs instead of JSON lines
  --help               this text

Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads customCommands, allowArbitraryCommands
and logLevel from the config (a change to any other key is refused, naming it).
`;

const EXIT_USAGE = 2;

interface Cli {
  configFile?: string;
  flags: ConfigFlags;
  logPretty: boolean;
  help: boolean;
}

export function parseCli(argv: string[]): Cli {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        controller: { type: 'string', multiple: true },
        token: { type: 'string' },
        'token-file': { type: 'string' },
        id: { type: 'string' },
        datacenter: { type: 'string' },
        'state-dir': { type: 'string' },
        'log-pretty': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `bad flags: ${(error as Error).message.split('\n')[0]} (see --help)`, { cause: error });
  }
  const flags: ConfigFlags = {};
  if (values.controller !== undefined) flags.controller = values.controller;
  if (values.token !== undefined) flags.token = values.token;
  if (values['token-file'] !== undefined) flags.tokenFile = values['token-file'];
  if (values.id !== undefined) flags.id = values.id;
  if (values.datacenter !== undefined) flags.datacenter = values.datacenter;
  if (values['state-dir'] !== undefined) flags.stateDir = values['state-dir'];
  return { ...(values.config !== undefined ? { configFile: values.config } : {}), flags, logPretty: values['log-pretty'], help: values.help };
}

export function createLogger(logPretty: boolean, level = 'info'): Logger {
  const options = {
    name: 'seedwire-agent',
    level,
    base: { pid: process.pid },
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', '*.headers.authorization', 'config.token'], censor: '[redacted]' },
  };
  return logPretty ? pino(options, pretty({ sync: true, colorize: process.stdout.isTTY })) : pino(options, pino.destination({ fd: 1, sync: true }));
}

function fail(message: string): never {
  process.stderr.write(`seedwire-agent: ${message.replace(/\n/g, ' ')}\n`);
  process.exit(EXIT_USAGE);
}

async function main(): Promise<void> {
  let cli: Cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (error) {
    fail(toSeedwireError(error).message);
  }
  if (cli.help) {
    process.stdout.write(USAGE);
    return;
  }
  const load = (): ReturnType<typeof loadConfig> => loadConfig({ ...(cli.configFile !== undefined ? { file: cli.configFile } : {}), flags: cli.flags, env: process.env });
  let config;
  try {
    config = load();
  } catch (error) {
    fail(toSeedwireError(error, 'SEEDWIRE_CONFIG').message);
  }
  const log = createLogger(cli.logPretty, config.logLevel);
  if (cli.flags.token !== undefined) {
    // Any local user can read a process's command line (ps, /proc/PID/cmdline).
    log.warn({ flag: '--token', instead: ['--token-file FILE', 'tokenFile in the config', 'SEEDWIRE_AGENT_TOKEN'] }, 'the token was given on the command line, where every local user can read it; use a token file or the environment instead');
  }
  let daemon;
  try {
    daemon = startDaemon({ config, log, registry: buildOpRegistry() });
  } catch (error) {
    fail(toSeedwireError(error).message);
  }
  try {
    await daemon.ready;
  } catch (error) {
    fail(toSeedwireError(error).message);
  }
  const running = { daemon, config };
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading config');
    reloadConfig({ config: running.config, load, log, onApplied: () => running.daemon.refreshFacts() });
  });

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal; exiting without waiting');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down');
    daemon.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: toSeedwireError(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Last: whoever waits for this line (a supervisor, a test) may send SIGTERM at once.
  log.info({ version: VERSION, id: config.id, datacenter: config.datacenter }, 'seedwire-agent started');
}

main().catch((error: unknown) => {
  process.stderr.write(`seedwire-agent: ${toSeedwireError(error).message}\n`);
  process.exit(1);
});
