/**
 * The call registry: runs `call` frames through validation, the ledger and the op handler;
 * `cancel` aborts a call's signal; `ack` lets the ledger forget delivered results.
 * A handler never throws out of here: every outcome becomes a result or error frame.
 */
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';
import type { CallFrame, Frame } from '../../shared/frames.js';
import type { OpName, OpParams } from '../../shared/ops.js';
import type { AgentConfig } from '../config/schema.js';
import { AGENT_LIMITS } from '../limits.js';
import type { OpDefinition } from '../ops/types.js';
import type { Spawner } from '../exec/spawner/spawner.js';
import type { StreamPort } from '../streams/types.js';
import { buildOpContext } from './context.js';
import type { Ledger, Outcome } from './ledger.js';
import { makeErrorFrame, makeResultFrame } from './outcome.js';
import { OutputChannel, type SendFrame } from './output.js';
import { checkRequirements, findOp, parseParams } from './validate.js';

export interface DispatcherOptions {
  registry: ReadonlyMap<string, OpDefinition>;
  config: AgentConfig;
  log: Logger;
  ledger: Ledger;
  streams: StreamPort;
  /** Sends on the current session; false while disconnected. */
  send: SendFrame;
  refreshFacts(): void;
  killGraceMs: number;
  /** Starts the ops' commands when it is ready (agent/exec/spawner/). */
  spawner?: Spawner | undefined;
  /** The current session's id, for call log lines. */
  sessionId?(): string | undefined;
}

interface RunningCall {
  id: string;
  op: string;
  startedAt: string;
  /** The seed a `seed-*` call works for. */
  seedId: string | undefined;
  abort: AbortController;
  output: OutputChannel;
  done: Promise<void>;
}


export class Dispatcher {
  private readonly running = new Map<string, RunningCall>();
  /** Output of ended calls not yet delivered or not yet acknowledged, sent again after a welcome. */
  private readonly undelivered = new Map<string, OutputChannel>();
  private accepting = true;
  /** Whether the controller of the current session acknowledges stored output (its welcome). */
  private acksOutput = false;

  constructor(private readonly options: DispatcherOptions) {}

  handleFrame(frame: Frame): void {
    switch (frame.t) {
      case 'call':
        this.handleCall(frame);
        return;
      case 'cancel':
        this.cancel(frame.id, new SeedwireError('SEEDWIRE_CANCELED', `canceled: ${frame.reason || 'by the controller'}`));
        return;
      case 'ack':
        this.options.ledger.ack(frame.ids);
        for (const { id, seq } of frame.output ?? []) this.ackOutput(id, seq);
        return;
      default:
        this.options.log.debug({ t: frame.t }, 'frame not for the dispatcher');
    }
  }

  /**
   * After a welcome: output the controller has not acknowledged and buffered output first (each
   * call's in seq order), then every result it has not acked. `acksOutput`: the welcome's word.
   */
  deliverPending(acksOutput = false): void {
    const { send } = this.options;
    this.acksOutput = acksOutput;
    for (const call of this.running.values()) if (!call.output.replay(send)) return;
    for (const [id, channel] of this.undelivered) {
      if (!channel.replay(send)) return;
      if (channel.settled) this.undelivered.delete(id);
    }
    for (const outcome of this.options.ledger.pendingOutcomes()) if (!send(outcome)) return;
  }

  private ackOutput(id: string, seq: number): void {
    const channel = this.running.get(id)?.output ?? this.undelivered.get(id);
    if (!channel) return;
    channel.ack(seq);
    if (channel.settled) this.undelivered.delete(id);
  }

  runningIds(): string[] {
    return [...this.running.keys()];
  }

  /** Calls running now, for the local status (agent/status/). */
  runningCalls(): Array<{ id: string; op: string; startedAt: string; seedId: string | undefined }> {
    return [...this.running.values()].map(({ id, op, startedAt, seedId }) => ({ id, op, startedAt, seedId }));
  }

  pendingIds(): string[] {
    return this.options.ledger.pendingOutcomes().flatMap((o) => (o.id === null ? [] : [o.id]));
  }

  /** Stops taking calls, lets running ones finish within `graceMs`, then aborts the rest. */
  async drain(graceMs: number): Promise<void> {
    this.accepting = false;
    if (this.running.size === 0) return;
    const allDone = (): Promise<unknown> => Promise.all([...this.running.values()].map((c) => c.done));
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([allDone(), expired]);
    clearTimeout(timer);
    for (const call of this.running.values()) {
      this.options.log.warn({ callId: call.id, op: call.op }, 'drain time is up; aborting call');
      call.abort.abort(new SeedwireError('SEEDWIRE_CANCELED', 'canceled: the agent is shutting down'));
    }
    await allDone();
  }

  private cancel(id: string, reason: SeedwireError): void {
    const call = this.running.get(id);
    if (!call) {
      this.options.log.debug({ callId: id }, 'cancel for a call that is not running');
      return;
    }
    this.options.log.info({ callId: id, op: call.op }, 'canceling call');
    call.abort.abort(reason);
  }

  private handleCall(frame: CallFrame): void {
    const { ledger, log, send } = this.options;
    if (this.running.has(frame.id)) {
      log.info({ callId: frame.id }, 'duplicate call attaches to the running one');
      return;
    }
    const known = ledger.get(frame.id);
    if (known) {
      log.info({ callId: frame.id }, 'duplicate call: re-sending the stored outcome');
      if (known.frame) send(known.frame);
      return;
    }
    if (!this.accepting) {
      send(makeErrorFrame(frame.id, new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the agent is shutting down and takes no new calls')));
      return;
    }
    let op: OpDefinition;
    let params: OpParams<OpName>;
    try {
      op = findOp(this.options.registry, frame.op);
      checkRequirements(op, this.options.config);
      params = parseParams(op, frame.params);
    } catch (error) {
      ledger.markRunning(frame.id, frame.op);
      this.finish(frame.id, makeErrorFrame(frame.id, error), undefined);
      return;
    }
    this.start(frame, op, params);
  }

  private start(frame: CallFrame, op: OpDefinition, params: OpParams<OpName>): void {
    const { ledger } = this.options;
    const log = this.options.log.child({ callId: frame.id, op: op.name, sessionId: this.options.sessionId?.() });
    const abort = new AbortController();
    const output = new OutputChannel(frame.id, undefined, undefined, () => this.acksOutput);
    ledger.markRunning(frame.id, op.name);
    const timer = frame.timeoutMs
      ? setTimeout(() => abort.abort(new SeedwireError('SEEDWIRE_TIMEOUT', `'${op.name}' did not finish within ${frame.timeoutMs} ms`)), frame.timeoutMs)
      : undefined;
    const ctx = buildOpContext(this.options, { id: frame.id, signal: abort.signal, log, output });
    const started = performance.now();
    log.info('call started');
    const done = (async (): Promise<void> => {
      let outcome: Outcome;
      try {
        const value = await op.run(ctx, params);
        outcome = abort.signal.aborted ? makeErrorFrame(frame.id, abort.signal.reason) : makeResultFrame(frame.id, value, performance.now() - started);
      } catch (error) {
        outcome = makeErrorFrame(frame.id, abort.signal.aborted ? abort.signal.reason : error);
      }
      clearTimeout(timer);
      this.running.delete(frame.id);
      const durationMs = Math.round(performance.now() - started);
      this.finish(frame.id, outcome, output);
      // Logged once the outcome is on its way: a synchronous write less on every call's round trip.
      log.info({ outcome: outcome.t, code: outcome.t === 'error' ? outcome.code : undefined, durationMs }, 'call ended');
      if (op.mutates) this.options.refreshFacts();
    })();
    const seedId = 'seedId' in params ? params.seedId : undefined;
    this.running.set(frame.id, { id: frame.id, op: op.name, startedAt: new Date().toISOString(), seedId, abort, output, done });
  }

  /**
   * Stores the outcome, then sends the call's remaining output and the outcome if the link is up.
   * Output not yet acknowledged is kept (undelivered) to be sent again before the result after a
   * reconnect, until the controller acknowledges it.
   */
  private finish(id: string, outcome: Outcome, output: OutputChannel | undefined): void {
    const { ledger, send } = this.options;
    ledger.complete(id, outcome);
    const flushed = output?.flush(send) ?? true;
    if (output && !output.settled) {
      this.undelivered.set(id, output);
      if (this.undelivered.size > AGENT_LIMITS.undeliveredOutputCalls) {
        const oldest = this.undelivered.keys().next().value;
        if (oldest !== undefined) this.undelivered.delete(oldest);
      }
    }
    if (flushed) send(outcome); // otherwise the result follows its output after the next welcome
  }
}
