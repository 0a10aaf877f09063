/** Builds the OpContext a handler sees for one call. */
import type { Logger } from 'pino';
import { runCommand } from '../exec/run.js';
import type { Spawner } from '../exec/spawner/spawner.js';
import type { AgentConfig } from '../config/schema.js';
import type { OpContext } from '../ops/types.js';
import type { StreamPort } from '../streams/types.js';
import type { OutputChannel, SendFrame } from './output.js';

export interface ContextDeps {
  config: AgentConfig;
  streams: StreamPort;
  send: SendFrame;
  refreshFacts(): void;
  killGraceMs: number;
  /** Starts the ops' commands when it is ready (agent/exec/spawner/). */
  spawner?: Spawner | undefined;
}

export function buildOpContext(deps: ContextDeps, call: { id: string; signal: AbortSignal; log: Logger; output: OutputChannel }): OpContext {
  const output = (stream: 'stdout' | 'stderr', text: string): void => call.output.write(stream, text, deps.send);
  return {
    callId: call.id,
    signal: call.signal,
    log: call.log,
    config: deps.config,
    output,
    progress(data) {
      // progress is a snapshot: a stale one is worthless after a reconnect, so it is not kept
      deps.send({ t: 'progress', id: call.id, data });
    },
    run(command, options = {}) {
      const { quiet, ...rest } = options;
      return runCommand(command, {
        killGraceMs: deps.killGraceMs,
        spawner: deps.spawner,
        ...rest,
        signal: call.signal,
        ...(quiet ? {} : { onOutput: output }),
      });
    },
    streams: deps.streams,
    refreshFacts: deps.refreshFacts,
  };
}
