/** Basic operations: hostname, facts, named custom commands and (when allowed) arbitrary exec. */
import { SeedwireError } from '../../shared/errors.js';
import { PUBLIC_OP_PARAMS } from '../../shared/ops.js';
import type { CommandResult } from '../exec/run.js';
import { collectFacts } from '../facts.js';
import { defineOp, type OpDefinition, type OpResult } from './types.js';

/** A command's exit code is its result; only a timeout or a kill is an error. */
function reportExit(what: string, result: CommandResult): OpResult {
  if (result.timedOut) throw new SeedwireError('SEEDWIRE_TIMEOUT', `${what} timed out after ${result.durationMs} ms`);
  if (result.isCanceled) throw new SeedwireError('SEEDWIRE_CANCELED', `${what} was canceled`);
  return { result: { exitCode: result.exitCode }, exitCode: result.exitCode };
}

export const hostnameOp = defineOp({
  name: 'hostname',
  params: PUBLIC_OP_PARAMS.hostname,
  async run(ctx) {
    return { result: { hostname: ctx.config.hostname } };
  },
});

export const factsOp = defineOp({
  name: 'facts',
  params: PUBLIC_OP_PARAMS.facts,
  async run(ctx) {
    return { result: await collectFacts(ctx.config, ctx.signal) };
  },
});

export const customCommandOp = defineOp({
  name: 'custom-command',
  params: PUBLIC_OP_PARAMS['custom-command'],
  mutates: true,
  async run(ctx, params) {
    const command = Object.hasOwn(ctx.config.customCommands, params.name) ? ctx.config.customCommands[params.name] : undefined;
    if (command === undefined) {
      const names = Object.keys(ctx.config.customCommands);
      const known = names.length > 0 ? `configured: ${names.join(', ')}` : 'none are configured; add them under customCommands in the agent config';
      throw new SeedwireError('SEEDWIRE_OP_REFUSED', `no custom command '${params.name}' (${known})`);
    }
    return reportExit(`custom command '${params.name}'`, await ctx.run(command));
  },
});

export const execOp = defineOp({
  name: 'exec',
  params: PUBLIC_OP_PARAMS.exec,
  mutates: true,
  async run(ctx, params) {
    if (!ctx.config.allowArbitraryCommands) {
      throw new SeedwireError('SEEDWIRE_OP_REFUSED', "arbitrary commands are disabled: set allowArbitraryCommands: true in the agent config");
    }
    return reportExit('command', await ctx.run(params.command));
  },
});

export const basicOps: OpDefinition[] = [hostnameOp, factsOp, customCommandOp, execOp] as OpDefinition[];
