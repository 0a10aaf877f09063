/** `seedwire op AGENT OP`, `seedwire ops`, `seedwire cancel OP_ID`. */
import type { ApiClient, Operation } from '../../client/api.js';
import { EXIT } from '../exit.js';
import { formatDuration, formatTime, renderTable, secondsBetween } from '../format.js';
import { printJson, type Io } from '../io.js';

/**
 * The exit code for an ended operation: the command's own exit code when it ran one (exec,
 * custom-command), 0 for any other success, EXIT.refused when the agent refused it, EXIT.failed
 * for every other failure (canceled, timed out, lost, killed).
 */
export function exitCodeOfOperation(operation: Operation): number {
  if (operation.state === 'succeeded') return operation.exitCode ?? 0;
  if (operation.exitCode !== null && operation.exitCode > 0) return operation.exitCode;
  if (operation.error?.code === 'SEEDWIRE_OP_REFUSED') return EXIT.refused;
  return EXIT.failed;
}

function describeEnd(operation: Operation): string {
  const how = operation.error ? `${operation.error.message} (${operation.error.code})` : operation.state;
  return `seedwire: operation ${operation.id} (${operation.op} on ${operation.agentId}) ${operation.state}: ${how}`;
}

/** Starts the operation, copies its output to stdout as it arrives, and waits for its end. */
export async function runOp(client: ApiClient, io: Io, agentId: string, op: string, params: Record<string, unknown>, json: boolean): Promise<number> {
  const started = await client.runOp(agentId, op, params, { wait: 0 });
  let lastChar = '\n';
  // Ctrl-C stops watching only: cancelling is a decision of its own (seedwire cancel).
  const stop = new AbortController();
  const offInterrupt = io.onInterrupt(() => stop.abort());
  try {
    // The output stream ends when the operation ends; with --json it only tells us when that is.
    for await (const chunk of client.output(started.id, { signal: stop.signal })) {
      if (json) continue;
      io.stdout.write(chunk);
      lastChar = chunk.at(-1) ?? lastChar;
    }
  } catch (error) {
    if (!stop.signal.aborted) throw error;
    io.stderr.write(`${lastChar === '\n' ? '' : '\n'}stopped watching operation ${started.id}; it keeps running (seedwire cancel ${started.id} stops it)\n`);
    return EXIT.interrupted;
  } finally {
    offInterrupt();
  }
  let operation = await client.operation(started.id);
  // The output stream can close a moment before the row is final (a controller shutting down).
  if (operation.state === 'running') operation = await waitForEnd(client, started.id);
  if (json) {
    printJson(io, operation);
  } else {
    if (lastChar !== '\n') io.stdout.write('\n');
    if (operation.state !== 'succeeded') io.stderr.write(`${describeEnd(operation)}\n`);
    else if (operation.result !== null && !isExitCodeOnly(operation.result)) io.stdout.write(`${JSON.stringify(operation.result, null, 2)}\n`);
  }
  return exitCodeOfOperation(operation);
}

/** exec and custom-command results are `{exitCode}`: already said by the exit status. */
function isExitCodeOnly(result: unknown): boolean {
  return typeof result === 'object' && result !== null && Object.keys(result).length === 1 && 'exitCode' in result;
}

/** Asks again for a while (the row lags the stream only briefly); returns the last answer either way. */
async function waitForEnd(client: ApiClient, id: string): Promise<Operation> {
  let operation = await client.operation(id);
  for (let tries = 0; operation.state === 'running' && tries < 40; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    operation = await client.operation(id);
  }
  return operation;
}

export async function listOps(client: ApiClient, io: Io, filter: { agent?: string; limit?: number }, json: boolean): Promise<number> {
  const operations = await client.operations(filter);
  if (json) {
    printJson(io, operations);
    return 0;
  }
  const now = io.now();
  const rows = operations.map((o) => [
    o.id,
    o.agentId,
    o.op,
    o.state,
    o.exitCode ?? '-',
    formatTime(o.createdAt),
    formatDuration(secondsBetween(o.createdAt, o.endedAt, now)),
    o.error ? o.error.code : '',
  ]);
  io.stdout.write(rows.length === 0 ? 'no operations\n' : renderTable(['id', 'agent', 'op', 'state', 'exit', 'started', 'took', 'error'], rows));
  return 0;
}

export async function cancelOp(client: ApiClient, io: Io, id: string, json: boolean): Promise<number> {
  const operation = await client.cancel(id);
  if (json) printJson(io, operation);
  else io.stdout.write(`operation ${operation.id} (${operation.op} on ${operation.agentId}): ${operation.state}\n`);
  return 0;
}
