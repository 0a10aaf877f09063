/**
 * A real OpContext for calling op handlers directly in system tests: commands run through
 * runCommand with the context's signal, output and progress are collected, logs go to a buffer
 * of parsed pino records.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { AgentConfig } from '../../agent/config/schema.js';
import { runCommand } from '../../agent/exec/run.js';
import type { OpContext, OpDefinition, OpResult } from '../../agent/ops/types.js';
import type { StreamPort } from '../../agent/streams/types.js';

export interface HostOpContext extends OpContext {
  controller: AbortController;
  outputText(): string;
  logRecords(): Array<Record<string, unknown>>;
  progressEvents: Array<Record<string, unknown>>;
}

const noStreams: StreamPort = {
  openSend: () => {
    throw new Error('streams are not available in this test context');
  },
  openReceive: () => {
    throw new Error('streams are not available in this test context');
  },
};

export function createHostOpContext(config: AgentConfig, callId = 'test-call'): HostOpContext {
  const controller = new AbortController();
  const output: string[] = [];
  const logLines: string[] = [];
  const progressEvents: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const ctx: HostOpContext = {
    callId,
    signal: controller.signal,
    log: pino({ level: 'debug' }, sink).child({ callId }),
    config,
    controller,
    progressEvents,
    output: (stream, text) => output.push(`[${stream}] ${text}`),
    progress: (data) => progressEvents.push(data),
    run: (command, options = {}) => {
      const { quiet, ...rest } = options;
      return runCommand(command, { ...rest, signal: controller.signal, onOutput: quiet ? undefined : (stream, text) => output.push(`[${stream}] ${text}`) });
    },
    streams: noStreams,
    refreshFacts: () => undefined,
    outputText: () => output.join(''),
    logRecords: () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
  return ctx;
}

/** Validates params with the op's schema (as the dispatcher does) and runs it. */
export async function callOp(ops: readonly OpDefinition[], name: string, ctx: OpContext, params: Record<string, unknown> = {}): Promise<OpResult> {
  const op = ops.find((o) => o.name === name);
  if (!op) throw new Error(`no op named ${name}`);
  return op.run(ctx, op.params.parse(params));
}

/** A resolved agent config for host tests (no controller is dialled). */
export function makeTestAgentConfig(sections: Pick<AgentConfig, 'mysql' | 'snapshot'>): AgentConfig {
  return {
    controller: ['ws://127.0.0.1:1/agent'],
    token: 'test-token',
    id: 'host-test',
    hostname: 'host-test',
    datacenter: null,
    stateDir: '/nonexistent',
    customCommands: {},
    allowArbitraryCommands: false,
    logLevel: 'info',
    status: { intervalSeconds: 5 },
    advanced: {},
    ...sections,
  };
}
