/**
 * The operation runner: persists each operation and its audit rows, sends it through the hub,
 * stores and publishes its output and progress, records the final state, and cancels through one
 * AbortController per operation. After a controller restart it resumes the operations an agent
 * reports (running or pending) when that agent reconnects, and fails the others as SEEDWIRE_LOST.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { HelloFrame, OutputFrame } from '../../shared/frames.js';
import type { EventBus } from '../events/types.js';
import { checkResult } from '../hub/contract.js';
import type { AgentHub, CallOutcome } from '../hub/types.js';
import { endAuditRow, type EndAudit, type NewOperation, type OperationEnd } from '../store/operations.js';
import type { StoreParts } from '../store/types.js';
import type { Audit, AuditEntry } from '../types.js';
import type { Operation, OperationError, OperationRunner, RunOptions, StartedOperation } from './types.js';
import { withoutSecrets } from './secrets.js';
import { validateOp } from './validate.js';

export interface RunnerDeps {
  hub: AgentHub;
  /**
   * Operations, their output and audit rows: an operation's row and its audit row are written
   * together by operations.start and operations.end (one commit each, one statement on PostgreSQL).
   */
  store: Pick<StoreParts, 'operations' | 'output'>;
  bus: EventBus;
  audit: Audit;
  log: Logger;
  /**
   * How long a read-only operation's first rows may wait for its end (deferStart); 0: written
   * before its call is sent, as every other operation's. The controller defers only on a store a
   * network round trip away (PostgreSQL): SQLite writes in-process in a fraction of a millisecond,
   * and measured slower deferred. @default 0
   */
  deferStartMs?: number;
}

interface Active {
  controller: AbortController;
  done: Promise<Operation>;
  /** Who hears the operation's output and progress: the starter, and any caller re-attached by call id. */
  listeners: Set<RunOptions>;
  /** The operation's output and progress writes, in arrival order; its end is recorded after them. */
  writes: Promise<void>;
  /** A read-only operation whose first rows may not be written yet (deferStart). */
  deferred?: DeferredStart;
  /**
   * Set when the operation was recorded whole (started and ended in one store call): its start was
   * not logged, so its one line, 'operation ended', carries what 'operation started' would have.
   */
  startFields?: Record<string, unknown>;
}

interface DeferredStart {
  /** Writes the row and its `started` audit row unless a write of them began; resolves once they are written. */
  write(): Promise<Operation>;
  /** The whole record of an operation that ended, in one call; null when its start is written or being written. */
  writeEnded(end: OperationEnd, endAudit: EndAudit): Promise<Operation> | null;
  /** The row, once written by either. */
  written: Promise<Operation>;
}

/** An operation that ended this way may be sent again under its id: its outcome never reached the controller. */
const RESENDABLE: ReadonlySet<string> = new Set(['SEEDWIRE_LOST', 'SEEDWIRE_DISCONNECTED', 'SEEDWIRE_AGENT_OFFLINE']);

/**
 * Operations that only read the host. With `deferStartMs` each is sent to the agent before its row
 * and audit row are written, and a quick one is recorded whole after its reply (one store round
 * trip on its path, not two); any other operation is sent only once they are committed, so
 * nothing that changes a host runs unrecorded, even when the store fails or the controller dies.
 */
const READ_ONLY_OPS: ReadonlySet<string> = new Set(['hostname', 'facts', 'mysql-status', 'mysql-port', 'mysql-du', 'mysql-datadir-available-space', 'mysql-error-log-tail', 'snapshots']);

/** The seed machine's actor; only it may run the internal seed-* operations. */
function isSeedActor(actor: string): boolean {
  return actor.startsWith('seed:');
}

export interface ControllerOperationRunner extends OperationRunner {
  /**
   * Hub resume handler: reads this agent's operations left running by an earlier process, and
   * returns what adopts them (those the hello reports) or fails them (the others) once it is welcomed.
   */
  prepareResume(agentId: string, hello: HelloFrame): Promise<() => void>;
  activeCount(): number;
  /** Resolves once every operation this process tracks has settled (after the hub closed). */
  drain(): Promise<void>;
}

function toOperationError(error: SeedwireError): OperationError {
  return error.details === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, details: error.details };
}

export function createOperationRunner(deps: RunnerDeps): ControllerOperationRunner {
  const { hub, bus, audit, store } = deps;
  const { operations, output } = store;
  const active = new Map<string, Active>();
  const deferStartMs = deps.deferStartMs ?? 0;
  let closed = false;

  function publish(operation: Operation, extra?: Record<string, unknown>): void {
    bus.publish('operation', extra ? { ...operation, ...extra } : operation);
  }

  /**
   * Queues a write of an operation tracked here behind its earlier ones (output stays in order);
   * resolves once it ran. Its failure is logged, and it is not retried.
   */
  function enqueue(entry: Active | undefined, operationId: string, write: () => Promise<void>): Promise<void> {
    const run = (): Promise<void> => write().catch((error: unknown) => deps.log.error({ err: error, opId: operationId }, 'storing the output of an operation failed'));
    const deferred = entry?.deferred;
    // Output needs the operation's row: a deferred start is written first.
    if (entry && deferred) entry.writes = entry.writes.then(() => deferred.write()).then(() => undefined, () => undefined);
    if (!entry) return run(); // run() never rejects
    entry.writes = entry.writes.then(run);
    return entry.writes;
  }

  /**
   * Stores an output frame (once: one the agent sends again after a reconnect is dropped by its
   * seq), after a note of what was lost before it, then publishes it with `end`, the operation's
   * output bytes once it is stored (followers dedupe by it). Resolves once it is stored, and
   * rejects when it could not be (logged here): the hub acknowledges to the agent only what is.
   */
  function recordOutput(operationId: string, frame: OutputFrame, lost: number, listeners: ReadonlySet<RunOptions>): Promise<void> {
    let data = frame.data;
    if (frame.gap) data = `\n[seedwire: ${frame.gap} bytes of output lost]\n${data}`;
    if (lost > 0) data = `\n[seedwire: ${lost} output frame${lost === 1 ? '' : 's'} lost]\n${data}`;
    let stored = false;
    const written = enqueue(active.get(operationId), operationId, async () => {
      const { bytes, duplicate } = await output.append(operationId, frame.stream, data, frame.seq);
      stored = true;
      if (!duplicate) bus.publish('output', { operationId, seq: frame.seq, stream: frame.stream, data, end: bytes });
    });
    for (const options of listeners) options.onOutput?.({ seq: frame.seq, stream: frame.stream, data: frame.data });
    return written.then(() => {
      if (!stored) throw new Error(`output of ${operationId} not stored`);
    });
  }

  async function finish(operation: Operation, outcome: { ok: true; value: CallOutcome } | { ok: false; error: unknown }): Promise<Operation> {
    const entry = active.get(operation.id);
    await entry?.writes;
    const ending = describeEnd(operation, outcome);
    const deferred = entry?.deferred;
    if (!ending) {
      // It outlives this process (the agent reports it after the next start): its row must exist.
      await deferred?.write();
      return (await operations.get(operation.id)) ?? operation;
    }
    // Ended before its row was written: the whole record in one store call.
    const whole = deferred?.writeEnded(ending.end, ending.audit) ?? null;
    if (!whole) await deferred?.written;
    const ended = whole ? await whole : await operations.end(operation.id, ending.end, ending.audit);
    if (!ended) {
      deps.log.warn({ opId: operation.id, agentId: operation.agentId, op: operation.op }, 'operation has no row to record its end in');
      return (await operations.get(operation.id)) ?? operation;
    }
    // Its end is committed: told after the turn that answers whoever waits for it (the API's
    // reply, a routed request's reply), so the log line and the events are not on its way.
    setImmediate(() => {
      deps.log.info({ opId: operation.id, agentId: operation.agentId, op: ended.op, state: ended.state, code: ended.error?.code, ...entry?.startFields }, 'operation ended');
      audit.publish(endAuditRow(ending.audit, ended));
      publish(ended);
    });
    return ended;
  }

  /** The end's row and audit row to write; null when the operation is left running across a shutdown. */
  function describeEnd(operation: Operation, outcome: { ok: true; value: CallOutcome } | { ok: false; error: unknown }): { end: OperationEnd; audit: EndAudit } | null {
    const endedAt = new Date().toISOString();
    let end: OperationEnd;
    if (outcome.ok) {
      end = { state: 'succeeded', endedAt, result: outcome.value.result ?? null, error: null, exitCode: outcome.value.exitCode };
    } else {
      const failure = toSeedwireError(outcome.error);
      if (failure.code === 'SEEDWIRE_SHUTTING_DOWN') {
        deps.log.info({ opId: operation.id, agentId: operation.agentId, op: operation.op }, 'operation left running across shutdown');
        return null;
      }
      const exitCode = (outcome.error as { exitCode?: unknown }).exitCode;
      end = {
        state: failure.code === 'SEEDWIRE_CANCELED' ? 'canceled' : 'failed',
        endedAt,
        result: null,
        error: toOperationError(failure),
        exitCode: typeof exitCode === 'number' ? exitCode : null,
      };
    }
    // actor, agent, op and seed never change after the insert: the audit row is built from memory.
    const auditBase: EndAudit = {
      at: endedAt,
      actor: operation.actor,
      agentId: operation.agentId,
      action: `op:${operation.op}`,
      params: operation.seedId === null ? { operationId: operation.id } : { operationId: operation.id, seedId: operation.seedId },
    };
    return { end, audit: auditBase };
  }

  /**
   * The first rows of a read-only operation, written when the first of these comes: its end (then
   * the whole record at once), its first output or progress, or `deferStartMs` (a slow operation).
   * `announce` runs once they are written, before anyone hears of the end.
   */
  function deferStart(op: NewOperation, started: AuditEntry, announce: (row: Operation, whole: boolean) => void): DeferredStart {
    let writing: Promise<Operation> | null = null;
    let resolve!: (row: Operation) => void;
    let reject!: (error: unknown) => void;
    const written = new Promise<Operation>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    written.catch(() => undefined); // start() reports it
    const settle = (write: Promise<Operation>, whole: boolean): Promise<Operation> => {
      writing = write;
      write.then((row) => {
        announce(row, whole);
        resolve(row);
      }, reject);
      return write;
    };
    const timer = setTimeout(() => void deferred.write().catch(() => undefined), deferStartMs);
    timer.unref();
    void written.finally(() => clearTimeout(timer)).catch(() => undefined);
    const deferred: DeferredStart = {
      write: () => writing ?? settle(operations.start(op, started), false),
      writeEnded: (end, endAudit) => (writing ? null : settle(operations.record(op, started, end, endAudit), true)),
      written,
    };
    return deferred;
  }

  /** Lets one more caller hear an operation this process tracks, and cancel it through its signal. */
  function attach(entry: Active, options: RunOptions): void {
    entry.listeners.add(options);
    const external = options.signal;
    if (!external) return;
    const onAbort = (): void => entry.controller.abort(external.reason);
    if (external.aborted) onAbort();
    else external.addEventListener('abort', onAbort, { once: true });
    void entry.done.finally(() => {
      external.removeEventListener('abort', onAbort);
      entry.listeners.delete(options);
    });
  }

  /**
   * `params`: what the agent gets when it differs from the stored row (a secret the store keeps
   * out). `deferred`: the operation's first rows are not written yet (a read-only one; deferStart).
   * `lastOutputSeq`: the agent's seq of the last output frame stored for a resumed operation
   * (lastFrameSeq; undefined when unknown), so what it sends again is stored once.
   */
  function track(
    operation: Operation,
    options: RunOptions | null,
    resumed: boolean,
    params: Record<string, unknown> = operation.params,
    deferred?: DeferredStart,
    lastOutputSeq?: number,
  ): StartedOperation {
    const controller = new AbortController();
    const listeners = new Set<RunOptions>();
    // Checked again here, not only at start: a row resumed after a restart comes from the store.
    const valid = validateOp(operation.op, params, false);
    const call = hub.call(operation.agentId, valid.op, valid.params, {
      callId: operation.id,
      signal: controller.signal,
      ...(options?.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(lastOutputSeq === undefined ? {} : { lastOutputSeq }),
      onOutput: (frame, lost) => recordOutput(operation.id, frame, lost, listeners),
      onProgress: (data) => {
        void enqueue(active.get(operation.id), operation.id, async () => publish((await operations.get(operation.id)) ?? operation, { progress: data }));
        for (const listener of listeners) listener.onProgress?.(data);
      },
      onDisconnect: options?.onDisconnect ?? 'wait',
    });
    const done = call
      .then(
        (value) => finish(operation, { ok: true, value }),
        (error: unknown) => finish(operation, { ok: false, error }),
      )
      .catch((error: unknown) => {
        deps.log.error({ err: error, opId: operation.id }, 'recording the end of an operation failed');
        return operation;
      })
      .finally(() => {
        active.delete(operation.id);
      });
    const entry: Active = { controller, done, listeners, writes: Promise.resolve(), ...(deferred ? { deferred } : {}) };
    active.set(operation.id, entry);
    if (options) attach(entry, options);
    if (resumed) deps.log.info({ opId: operation.id, agentId: operation.agentId, op: operation.op }, 'operation resumed after reconnect');
    return { operation, done };
  }

  /** start() for an id that already has a row: re-attach, resume, re-send or answer from the record. */
  async function restart(row: Operation, agentId: string, op: string, options: RunOptions): Promise<StartedOperation> {
    if (row.agentId !== agentId || row.op !== op) {
      throw new SeedwireError('SEEDWIRE_CONFLICT', `operation ${row.id} is ${row.op} on ${row.agentId}, not ${op} on ${agentId}`);
    }
    const entry = active.get(row.id);
    if (entry) {
      attach(entry, options);
      return { operation: row, done: entry.done };
    }
    if (row.state !== 'running' && !(row.state === 'failed' && row.error !== null && RESENDABLE.has(row.error.code))) {
      return { operation: row, done: Promise.resolve(row) };
    }
    if (!hub.isConnected(agentId)) throw new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected`);
    const reopened = row.state !== 'running' && (await operations.reopen(row.id));
    const operation = (await operations.get(row.id)) ?? row;
    // Sent again, it runs from its first output frame; resumed, it goes on after what is stored.
    const lastOutputSeq = reopened ? -1 : ((await output.lastFrameSeq(row.id)) ?? undefined);
    // Another caller may have re-attached it while this one read the store.
    const attached = active.get(row.id);
    if (attached) {
      attach(attached, options);
      return { operation, done: attached.done };
    }
    deps.log.info({ opId: row.id, agentId, op, actor: options.actor, reopened }, 'operation re-attached by id');
    await audit.record({ actor: options.actor, agentId, action: `op:${op}`, params: auditParams(row.id, options), outcome: reopened ? 'resent' : 'resumed' });
    publish(operation);
    return track(operation, options, !reopened, operation.params, undefined, lastOutputSeq);
  }

  function auditParams(operationId: string, options: RunOptions, params?: unknown): Record<string, unknown> {
    return {
      operationId,
      ...(params === undefined ? {} : { params }),
      ...(options.seedId === undefined ? {} : { seedId: options.seedId }),
      ...(options.stage === undefined ? {} : { stage: options.stage }),
    };
  }

  const runner: ControllerOperationRunner = {
    async start(agentId, op, params, options) {
      if (closed) throw new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
      const valid = validateOp(op, params, !isSeedActor(options.actor));
      // A connected agent is known: no store read on the common path.
      if (!hub.isConnected(agentId) && !(await hub.agent(agentId))) throw new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} has ever connected`);
      const existing = options.callId === undefined ? null : await operations.get(options.callId);
      if (existing) return restart(existing, agentId, valid.op, options);
      if (!hub.isConnected(agentId)) throw new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected`);
      const createdAt = new Date().toISOString();
      const id = options.callId ?? randomUUID();
      const stored = withoutSecrets(valid.params);
      const row: Operation = {
        id,
        agentId,
        op: valid.op,
        params: stored,
        state: 'running',
        createdAt,
        endedAt: null,
        result: null,
        error: null,
        exitCode: null,
        outputTail: '',
        actor: options.actor,
        seedId: options.seedId ?? null,
      };
      const started: AuditEntry = { at: createdAt, actor: options.actor, agentId, action: `op:${op}`, params: auditParams(id, options, stored), outcome: 'started', message: null };
      const newOp: NewOperation = { id, agentId, op: valid.op, params: stored, createdAt, actor: options.actor, seedId: row.seedId };
      const startFields = { actor: options.actor, seedId: options.seedId, requester: options.requester };
      // Recorded whole (a quick read-only operation): one line at its end instead of two in the same millisecond.
      const announce = (operation: Operation, whole = false): void => {
        const entry = whole ? active.get(operation.id) : undefined;
        if (entry) {
          // Its start and end, told together after the answer (finish), in this order.
          entry.startFields = startFields;
          setImmediate(() => {
            audit.publish(started);
            publish(operation);
          });
          return;
        }
        deps.log.info({ opId: operation.id, agentId, op, ...startFields }, 'operation started');
        audit.publish(started);
        publish(operation);
      };
      if (deferStartMs <= 0 || options.callId !== undefined || !READ_ONLY_OPS.has(valid.op)) {
        const operation = await operations.start(newOp, started);
        announce(operation);
        return track(operation, options, false, valid.params);
      }
      // A read-only operation goes to the agent before its rows are written: a quick one is then
      // recorded whole, started and ended, in one store call after its reply (deferStart). Nobody
      // hears of its end before its rows exist; if they cannot be written it is canceled and
      // start() fails.
      const deferred = deferStart(newOp, started, (_written, whole) => announce(row, whole));
      const tracked = track(row, options, false, valid.params, deferred);
      try {
        return { operation: await deferred.written, done: tracked.done };
      } catch (error) {
        active.get(id)?.controller.abort(toSeedwireError(error));
        throw error;
      }
    },
    async run(agentId, op, params, options) {
      const { done } = await runner.start(agentId, op, params, options);
      const final = await done;
      if (final.state === 'succeeded') return { result: checkResult(agentId, op, final.result), exitCode: final.exitCode, durationMs: Date.parse(final.endedAt ?? final.createdAt) - Date.parse(final.createdAt), operation: final };
      // Left running by a shutdown: the agent keeps it, and the next controller process resumes it.
      if (final.state === 'running') throw new SeedwireError('SEEDWIRE_SHUTTING_DOWN', `operation ${final.id} outlives this controller process`, { details: { operation: final } });
      const code = final.error?.code;
      throw new SeedwireError(code && code.startsWith('SEEDWIRE_') ? (code as SeedwireError['code']) : 'SEEDWIRE_INTERNAL', final.error?.message ?? `operation ${final.state}`, {
        details: { operation: final },
      });
    },
    get: (id) => operations.get(id),
    list: ({ agentId, seedId, limit }) =>
      operations.list({ ...(agentId === undefined ? {} : { agentId }), ...(seedId === undefined ? {} : { seedId }), limit: Math.min(Math.max(limit ?? 100, 1), 1000) }),
    async wait(id, ms, signal) {
      const entry = active.get(id);
      if (!entry || ms <= 0) return await operations.get(id);
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      let ended: Operation | undefined;
      const stop = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        onAbort = () => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([entry.done.then((operation) => void (ended = operation)), stop]);
      } finally {
        clearTimeout(timer);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
      }
      // An ended operation's row as its end was committed (done resolves after): no read needed.
      return ended !== undefined && ended.state !== 'running' ? ended : await operations.get(id);
    },
    async cancel(id, reason) {
      const entry = active.get(id);
      if (entry) {
        entry.controller.abort(new SeedwireError('SEEDWIRE_CANCELED', reason));
        return await operations.get(id);
      }
      const row = await operations.get(id);
      if (row?.state === 'running') {
        // Not tracked by this process (agent offline since a restart): nothing to tell the agent now.
        return await finish(row, { ok: false, error: new SeedwireError('SEEDWIRE_CANCELED', `${reason} (agent not connected; it was not told)`) });
      }
      return row;
    },
    close() {
      closed = true;
    },
    activeCount: () => active.size,
    async drain() {
      await Promise.allSettled([...active.values()].map((entry) => entry.done));
    },
    async prepareResume(agentId, hello) {
      const known = new Set([...hello.running, ...hello.pending]);
      const rows = await operations.listRunning(agentId);
      // Where each resumed operation's stored output ends: what the agent sends again is stored once.
      const resumed = rows.filter((row) => known.has(row.id) && !active.has(row.id));
      const lastSeqs = new Map(await Promise.all(resumed.map(async (row) => [row.id, await output.lastFrameSeq(row.id)] as const)));
      return () => {
        for (const row of rows) {
          if (active.has(row.id)) continue; // this process still waits for it; the hub decides
          if (known.has(row.id)) {
            track(row, null, true, row.params, undefined, lastSeqs.get(row.id) ?? undefined);
            continue;
          }
          finish(row, { ok: false, error: new SeedwireError('SEEDWIRE_LOST', `agent ${agentId} reconnected without operation ${row.id}; its outcome is unknown`) }).catch(
            (error: unknown) => deps.log.error({ err: error, opId: row.id }, 'recording a lost operation failed'),
          );
        }
      };
    },
  };
  return runner;
}
