/**
 * The `seedwire` command line: commander for the commands, flags and help; each command in
 * commands/. runCli() returns the exit code instead of exiting, so main.ts owns the process.
 */
import { Command, CommanderError, Option } from 'commander';
import type { ApiClient, Compression, CreateSeedRequest, SeedMethod } from '../client/api.js';
import { VERSION } from '../shared/version.js';
import { listAgents, showAgent } from './commands/agents.js';
import { listAudit } from './commands/audit.js';
import { cancelOp, listOps, runOp } from './commands/ops.js';
import { abortSeed, listSeeds, showSeed, startSeed } from './commands/seeds.js';
import { createClient, DEFAULT_CONTROLLER, DEFAULT_DATA_DIR, type CliEnv, type GlobalOptions } from './config.js';
import { describeError, EXIT, exitCodeOf, usageError } from './exit.js';
import type { Io } from './io.js';
import { collect, parseParams, parsePositiveInt, parseRate } from './params.js';

const EXIT_HELP = `
Exit codes:
  0  success
  2  bad usage (unknown command or flag, bad value, unknown agent, seed or operation)
  3  controller unreachable, or the admin token missing or refused
  4  refused by the controller (a seed precheck, an offline agent, an agent refusing an operation); the reason is on stderr
  5  the seed or operation failed, or was aborted or canceled
  seedwire op exits with the command's own exit code when the operation ran one.
  130 Ctrl-C while following a seed or an operation: stopped watching, it carries on.

The admin token comes from --token-file FILE, else SEEDWIRE_ADMIN_TOKEN, else
$SEEDWIRE_DATA_DIR/admin-token (default ${DEFAULT_DATA_DIR}/admin-token, as written by a controller started in this directory).
`;

const SEED_METHODS: readonly SeedMethod[] = ['snapshot', 'cold', 'backup'];
const COMPRESSIONS: ReadonlyArray<Compression | 'auto'> = ['auto', 'none', 'gzip', 'zstd'];

interface Context {
  io: Io;
  json: boolean;
  readonly client: ApiClient;
}

interface SeedFlags {
  from?: string;
  to?: string;
  method?: SeedMethod;
  compression?: Compression | 'auto';
  maxRate?: string;
  lanes?: string;
  startTarget?: boolean;
  follow?: boolean;
}

export async function runCli(argv: readonly string[], io: Io, env: CliEnv, cwd: string): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('seedwire');

  /**
   * Wraps a command: its positional arguments and options, a context whose client is made on
   * first use (so bad arguments are reported before a missing token), the exit code it returns.
   */
  const act =
    <A extends string[], O>(fn: (ctx: Context, options: O, ...args: A) => Promise<number>) =>
    async (...args: unknown[]): Promise<void> => {
      const command = args.at(-1) as Command;
      const options = args.at(-2) as O;
      const globals = command.optsWithGlobals<GlobalOptions>();
      let client: ApiClient | null = null;
      const ctx: Context = {
        io,
        json: globals.json === true,
        get client() {
          client ??= createClient(globals, env, cwd);
          return client;
        },
      };
      code = await fn(ctx, options, ...(args.slice(0, -2) as A));
    };

  program
    .description('Drive a seedwire controller: agents, operations, seeds and the audit log.')
    .version(VERSION, '--version', 'print the version')
    .option('--controller <url>', `the controller's URL [SEEDWIRE_CONTROLLER] (default ${DEFAULT_CONTROLLER})`)
    .option('--token-file <file>', 'read the admin token from FILE (else SEEDWIRE_ADMIN_TOKEN, else the controller data dir)')
    .option('--json', "print the API's own JSON instead of tables")
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text) })
    .allowExcessArguments(false);

  program
    .command('agents')
    .description('list agents: datacenter, connected, last seen, MySQL running, datadir size, free space')
    .action(act(async (ctx) => listAgents(ctx.client, io, ctx.json)));

  program
    .command('agent')
    .description("show one agent's facts and its peers, local and remote")
    .argument('<id>', 'agent id')
    .action(act(async (ctx, _o, id: string) => showAgent(ctx.client, io, id, ctx.json)));

  program
    .command('op')
    .description("run an operation on an agent, stream its output live, exit with the command's exit code")
    .argument('<agent>', 'agent id')
    .argument('<op>', 'operation (hostname, mysql-status, exec, custom-command, ...)')
    .option('--param <key=value>', 'a parameter (repeatable); KEY:=JSON sends raw JSON', collect, [])
    .action(
      act(async (ctx, options: { param: string[] }, agent: string, op: string) => {
        const params = parseParams(op, options.param);
        return runOp(ctx.client, io, agent, op, params, ctx.json);
      }),
    );

  program
    .command('ops')
    .description('recent operations')
    .option('--agent <id>', "only this agent's")
    .option('--limit <n>', 'how many (default 100)')
    .action(
      act(async (ctx, flags: { agent?: string; limit?: string }) => {
        const limit = flags.limit === undefined ? undefined : parsePositiveInt('--limit', flags.limit, 10_000);
        return listOps(ctx.client, io, { ...(flags.agent === undefined ? {} : { agent: flags.agent }), ...(limit === undefined ? {} : { limit }) }, ctx.json);
      }),
    );

  program
    .command('cancel')
    .description('cancel a running operation (the agent kills its whole process group)')
    .argument('<op-id>', 'operation id')
    .action(act(async (ctx, _o, id: string) => cancelOp(ctx.client, io, id, ctx.json)));

  const seed = program
    .command('seed')
    .description('start a seed (--from A --to B), or show / abort one')
    .option('--from <agent>', 'the source agent')
    .option('--to <agent>', 'the target agent (its datadir is replaced)')
    .addOption(new Option('--method <method>', 'how the source is read (default: snapshot when the source has a backend, else cold)').choices(SEED_METHODS))
    .addOption(new Option('--compression <codec>', 'on the wire (default auto: zstd across datacenters)').choices(COMPRESSIONS))
    .option('--max-rate <rate>', 'bandwidth cap, e.g. 50M (bytes per second; K, M, G are powers of 1024)')
    .option('--lanes <n>', 'parallel transfer lanes (default: min(4, CPUs), chosen by the controller)')
    .option('--no-start-target', 'leave MySQL stopped on the target afterwards')
    .option('--follow', 'follow it to the end: live progress, then the stages and the replication coordinates')
    .action(
      act(async (ctx, flags: SeedFlags) => {
        const request = seedRequestOf(flags);
        return startSeed(ctx.client, io, request, flags.follow === true, ctx.json);
      }),
    );
  seed
    .command('show')
    .description('a seed: progress, stages, result and replication coordinates')
    .argument('<id>', 'seed id')
    .action(act(async (ctx, _o, id: string) => showSeed(ctx.client, io, id, ctx.json)));
  seed
    .command('abort')
    .description('abort a seed: both sides stop and clean up; the record stays')
    .argument('<id>', 'seed id')
    .action(act(async (ctx, _o, id: string) => abortSeed(ctx.client, io, id, ctx.json)));

  program
    .command('seeds')
    .description('recent seeds')
    .option('--limit <n>', 'how many (default 100)')
    .action(
      act(async (ctx, flags: { limit?: string }) => {
        const limit = flags.limit === undefined ? undefined : parsePositiveInt('--limit', flags.limit, 1000);
        return listSeeds(ctx.client, io, limit, ctx.json);
      }),
    );

  program
    .command('audit')
    .description('the audit log, newest first')
    .option('--limit <n>', 'how many entries', '50')
    .action(
      act(async (ctx, flags: { limit: string }) => {
        const limit = parsePositiveInt('--limit', flags.limit, 10_000);
        return listAudit(ctx.client, io, limit, ctx.json);
      }),
    );

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and --version end with exit code 0; commander has printed any error already.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    io.stderr.write(`seedwire: ${describeError(error)}\n`);
    return exitCodeOf(error);
  }
}

function seedRequestOf(flags: SeedFlags): CreateSeedRequest {
  if (!flags.from || !flags.to) throw usageError('seed: --from AGENT and --to AGENT are required (or: seed show ID, seed abort ID)');
  return {
    source: flags.from,
    target: flags.to,
    ...(flags.method ? { method: flags.method } : {}),
    ...(flags.compression ? { compression: flags.compression } : {}),
    ...(flags.maxRate === undefined ? {} : { maxBytesPerSec: parseRate(flags.maxRate) }),
    ...(flags.lanes === undefined ? {} : { lanes: parsePositiveInt('--lanes', flags.lanes, 64) }),
    ...(flags.startTarget === false ? { startTarget: false } : {}),
  };
}
