/**
 * The requester's side of routing: an operation on an agent another controller holds. The start
 * goes to `seedwire.agent.<id>.start` (request/reply); the holder runs it and publishes its output
 * and its end, numbered, to a stream subject of this controller's (one wildcard subscription for
 * all of them, made before the first start: no subscribe and unsubscribe per operation, each of
 * which costs a write here and a change of NATS's subscription cache). An operation that ended
 * before the holder answered comes back ended in the reply, and the API answers at once. Here each such
 * operation has a mirror: its row as the holder last reported it, its output (bounded), and whoever
 * follows it, so the HTTP API answers exactly as for a local operation.
 *
 * A mirror never waits forever: when its stream is silent longer than `silenceMs` it asks the
 * agent's subject for the row. A holder that no longer knows the operation (the agent moved), or no
 * holder at all for `orphanFailMs` (its controller died), ends it SEEDWIRE_LOST; a bus down longer
 * than `busDownFailMs` ends it SEEDWIRE_BUS_UNAVAILABLE.
 */
import { nuid, type Msg, type NatsConnection, type Subscription } from 'nats';
import type { Logger } from 'pino';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { Operation, StartedOperation } from '../ops/types.js';
import { BusRequestError, type BusLink } from './link.js';
import { decodeMessage, encodeMessage, fromWireError, OperationReply, StreamMessage, type OperationRequest, type StartRequest } from './messages.js';
import { SUBJECTS } from './subjects.js';

export interface RoutedOptions {
  link: BusLink;
  controllerId: string;
  log: Logger;
  /** Whether this controller has ever seen the agent (404 or 409 when no controller holds it). */
  knowsAgent(agentId: string): Promise<boolean>;
  requestTimeoutMs: number;
  silenceMs: number;
  orphanFailMs: number;
  busDownFailMs: number;
  /** Output kept per mirrored operation. */
  maxOutputBytes: number;
  /** Ended mirrors kept for GETs after the end. */
  keepEnded: number;
}

export interface OutputListener {
  onData(text: string): void;
  onEnd(): void;
}

/** An operation's output as a follower sees it: the text so far, then live chunks until its end. */
export interface RemoteOutput {
  text: string;
  running: boolean;
  /** Adds the listener (chunks after `text`, then the end); returns its remover. */
  follow(listener: OutputListener): () => void;
  /** Stops listening without following (idempotent). */
  close(): void;
}

export interface RoutedOps {
  start(agentId: string, op: string, params: Record<string, unknown>, actor: 'admin'): Promise<StartedOperation>;
  /** The mirrored row of an operation this controller routed, or null. */
  get(id: string): Operation | null;
  wait(id: string, ms: number, signal?: AbortSignal): Promise<Operation | null>;
  /** Output so far and its followers, for an operation this controller routed. */
  output(id: string): RemoteOutput | null;
  /** Cancels through the holder; null when this controller did not route `id`. */
  cancel(id: string, reason: string): Promise<Operation | null>;
  /** Operations routed since start, and those not yet ended. */
  stats(): { started: number; running: number };
  /** Fails every running mirror (shutdown). */
  close(): void;
}

interface Mirror {
  agentId: string;
  operation: Operation | null;
  early: StreamMessage[];
  text: string;
  textBytes: number;
  cut: boolean;
  lastN: number;
  lastHeard: number;
  probing: boolean;
  /** Since when the holder's subject had no responders (the agent held by no controller), or null. */
  unheldSince: number | null;
  listeners: Set<OutputListener>;
  done: Promise<Operation>;
  resolve: (operation: Operation) => void;
  /** Its stream subject's last token: the key of its entry in `streams`. */
  streamId: string;
  ended: boolean;
}

/** A request's failure as the API should report it. */
export function describeRequestFailure(error: unknown, what: string, notHeld: () => SeedwireError): SeedwireError {
  if (error instanceof BusRequestError) {
    if (error.reason === 'no-responders') return notHeld();
    if (error.reason === 'timeout') return new SeedwireError('SEEDWIRE_BUS_UNAVAILABLE', `${what}: no answer over the cluster bus in time (the bus, or the controller holding the agent, is not answering)`, { cause: error });
    return new SeedwireError('SEEDWIRE_BUS_UNAVAILABLE', `${what}: ${error.message}`, { cause: error });
  }
  if (error instanceof SeedwireError) return error;
  // Anything else from the NATS client (a publish refused: the connection closing, a bad subject).
  return new SeedwireError('SEEDWIRE_BUS_UNAVAILABLE', `${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

export function createRoutedOps(options: RoutedOptions): RoutedOps {
  const { link, controllerId, log } = options;
  const mirrors = new Map<string, Mirror>();
  /** Stream id → what handles a message on it, from just before the start request until the end. */
  const streams = new Map<string, (message: StreamMessage) => void>();
  let streamSub: Subscription | null = null;
  const ended: string[] = [];
  let busDownSince: number | null = null;
  let started = 0;
  let closed = false;

  function notHeld(agentId: string, known: boolean): SeedwireError {
    return known
      ? new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected to any controller`)
      : new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} is connected to any controller of this cluster`);
  }

  function append(mirror: Mirror, text: string): void {
    if (!mirror.cut) {
      const bytes = Buffer.byteLength(text);
      if (mirror.textBytes + bytes <= options.maxOutputBytes) {
        mirror.text += text;
        mirror.textBytes += bytes;
      } else {
        mirror.cut = true;
        mirror.text += '\n[seedwire: output past this point is kept by the controller holding the agent]\n';
      }
    }
    for (const listener of mirror.listeners) listener.onData(text);
  }

  function finish(id: string, mirror: Mirror, operation: Operation): void {
    if (mirror.ended) return;
    mirror.ended = true;
    mirror.operation = operation;
    streams.delete(mirror.streamId);
    mirror.resolve(operation);
    for (const listener of [...mirror.listeners]) listener.onEnd();
    mirror.listeners.clear();
    ended.push(id);
    while (ended.length > options.keepEnded) mirrors.delete(ended.shift()!);
  }

  function fail(id: string, mirror: Mirror, error: SeedwireError): void {
    const base = mirror.operation;
    if (base === null || mirror.ended) return;
    log.warn({ opId: id, agentId: mirror.agentId, code: error.code }, error.message);
    finish(id, mirror, { ...base, state: 'failed', endedAt: new Date().toISOString(), error: { code: error.code, message: error.message } });
  }

  function apply(id: string, mirror: Mirror, message: StreamMessage): void {
    mirror.lastHeard = Date.now();
    if (message.n <= mirror.lastN) return;
    if (message.n > mirror.lastN + 1) append(mirror, `\n[seedwire: ${message.n - mirror.lastN - 1} output messages lost on the cluster bus]\n`);
    mirror.lastN = message.n;
    if (message.kind === 'output') append(mirror, message.data);
    else if (message.kind === 'end') {
      // A holder that shut down leaves the operation running on the agent; its outcome is not ours to learn.
      if (message.operation.state === 'running') fail(id, mirror, new SeedwireError('SEEDWIRE_LOST', `the controller holding agent ${mirror.agentId} shut down during operation ${id}; it may still run on the agent`));
      else finish(id, mirror, message.operation);
    }
  }

  async function ask(agentId: string, verb: 'get' | 'cancel', request: OperationRequest): Promise<Operation | null> {
    let msg: Msg;
    try {
      msg = await link.request(SUBJECTS.agent(agentId, verb), encodeMessage(request), options.requestTimeoutMs);
    } catch (error) {
      const known = await options.knowsAgent(agentId).catch(() => true);
      throw describeRequestFailure(error, `${verb} ${request.operationId} on the controller holding ${agentId}`, () => notHeld(agentId, known));
    }
    const reply = decodeMessage(OperationReply, msg.data, `${verb} reply`);
    if (!reply.ok) throw fromWireError(reply.error);
    return reply.operation;
  }

  /** Silent stream: is the holder still there, and does the operation still run? */
  async function probe(id: string, mirror: Mirror): Promise<void> {
    let row: Operation | null;
    try {
      row = await ask(mirror.agentId, 'get', { requester: controllerId, operationId: id });
    } catch (error) {
      const failure = toSeedwireError(error);
      if (failure.code === 'SEEDWIRE_AGENT_OFFLINE' || failure.code === 'SEEDWIRE_AGENT_UNKNOWN') {
        // The agent may be redialing its controller; past the grace its controller is taken as gone.
        mirror.unheldSince ??= Date.now();
        if (Date.now() - mirror.unheldSince >= options.orphanFailMs) {
          fail(id, mirror, new SeedwireError('SEEDWIRE_LOST', `no controller has held agent ${mirror.agentId} for ${Math.round(options.orphanFailMs / 1000)} s (its controller stopped, or the agent is gone) while operation ${id} ran; its outcome is unknown here`));
        }
      }
      return; // a timeout: try again at the next silence
    }
    mirror.unheldSince = null;
    if (row === null) fail(id, mirror, new SeedwireError('SEEDWIRE_LOST', `the controller now holding agent ${mirror.agentId} does not know operation ${id}; its outcome is unknown here`));
    else if (row.state !== 'running') finish(id, mirror, row);
    else mirror.lastHeard = Date.now();
  }

  /** This controller's stream subjects, all of them; the client restores it after a reconnect. */
  function subscribeStreams(nc: NatsConnection): void {
    if (streamSub !== null || closed) return;
    streamSub = nc.subscribe(SUBJECTS.stream(controllerId, '*'), {
      callback: (error, msg) => {
        if (error) return;
        const handler = streams.get(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
        if (handler === undefined) return; // ended here already (its reply carried the end), or unknown
        let message: StreamMessage;
        try {
          message = decodeMessage(StreamMessage, msg.data, 'routed output');
        } catch (failure) {
          log.warn({ err: failure, subject: msg.subject }, 'bad routed output message dropped');
          return;
        }
        handler(message);
      },
    });
  }
  link.onConnected(() => {
    const nc = link.connection();
    if (nc !== null) subscribeStreams(nc);
  });

  const watchdog = setInterval(() => {
    const now = Date.now();
    if (!link.connected()) busDownSince ??= now;
    else busDownSince = null;
    for (const [id, mirror] of mirrors) {
      if (mirror.operation === null || mirror.ended || mirror.probing || now - mirror.lastHeard < options.silenceMs) continue;
      if (busDownSince !== null) {
        if (now - busDownSince >= options.busDownFailMs) fail(id, mirror, new SeedwireError('SEEDWIRE_BUS_UNAVAILABLE', `the cluster bus has been down for ${Math.round((now - busDownSince) / 1000)} s during operation ${id} on agent ${mirror.agentId}; its outcome is unknown here`));
        continue;
      }
      mirror.probing = true;
      probe(id, mirror)
        .catch((error: unknown) => log.debug({ err: error, opId: id }, 'routed operation probe failed'))
        .finally(() => {
          mirror.probing = false;
        });
    }
  }, Math.max(50, Math.floor(options.silenceMs / 3)));
  watchdog.unref();

  return {
    async start(agentId, op, params, actor) {
      if (closed) throw new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
      const nc = link.require();
      subscribeStreams(nc); // in order before the request on the same connection, so the holder's first message finds it
      const streamId = nuid.next();
      const stream = SUBJECTS.stream(controllerId, streamId);
      let resolve!: (operation: Operation) => void;
      const done = new Promise<Operation>((r) => (resolve = r));
      const mirror: Mirror = {
        agentId,
        operation: null,
        early: [],
        text: '',
        textBytes: 0,
        cut: false,
        lastN: 0,
        lastHeard: Date.now(),
        probing: false,
        unheldSince: null,
        listeners: new Set(),
        done,
        resolve,
        streamId,
        ended: false,
      };
      // Listening before asking: the first output may arrive before the start's reply.
      streams.set(streamId, (message) => {
        if (mirror.operation === null) mirror.early.push(message);
        else apply(mirror.operation.id, mirror, message);
      });
      const request: StartRequest = { requester: controllerId, stream, op, params, actor, endInReply: true };
      let reply: OperationReply;
      try {
        const msg = await link.request(SUBJECTS.agent(agentId, 'start'), encodeMessage(request), options.requestTimeoutMs);
        reply = decodeMessage(OperationReply, msg.data, 'start reply');
      } catch (error) {
        streams.delete(streamId);
        const known = await options.knowsAgent(agentId).catch(() => true);
        throw describeRequestFailure(error, `${op} on agent ${agentId}`, () => notHeld(agentId, known));
      }
      if (!reply.ok || reply.operation === null) {
        streams.delete(streamId);
        throw reply.ok ? new SeedwireError('SEEDWIRE_INTERNAL', `the controller holding ${agentId} started nothing`) : fromWireError(reply.error);
      }
      const operation = reply.operation;
      mirror.operation = operation;
      mirrors.set(operation.id, mirror);
      started++;
      // The holder logs the operation at info, naming this controller as its requester.
      log.debug({ opId: operation.id, agentId, op }, 'operation routed to the controller holding the agent');
      for (const message of mirror.early.sort((a, b) => a.n - b.n)) apply(operation.id, mirror, message);
      mirror.early = [];
      // Ended before the holder answered (a quick read-only operation): no need to wait for its stream's end.
      if (operation.state !== 'running') finish(operation.id, mirror, operation);
      return { operation, done };
    },
    get: (id) => mirrors.get(id)?.operation ?? null,
    async wait(id, ms, signal) {
      const mirror = mirrors.get(id);
      if (!mirror || mirror.operation === null) return null;
      if (mirror.operation.state !== 'running' || ms <= 0) return mirror.operation;
      let timer: NodeJS.Timeout | undefined;
      let onAbort: (() => void) | undefined;
      const stop = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        onAbort = () => resolve();
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      try {
        await Promise.race([mirror.done, stop]);
      } finally {
        clearTimeout(timer);
        if (onAbort) signal?.removeEventListener('abort', onAbort);
      }
      return mirror.operation;
    },
    output(id) {
      const mirror = mirrors.get(id);
      if (!mirror || mirror.operation === null) return null;
      return {
        text: mirror.text,
        running: mirror.operation.state === 'running',
        follow(listener) {
          mirror.listeners.add(listener);
          return () => mirror.listeners.delete(listener);
        },
        close: () => undefined,
      };
    },
    async cancel(id, reason) {
      const mirror = mirrors.get(id);
      if (!mirror || mirror.operation === null) return null;
      if (mirror.ended) return mirror.operation;
      try {
        const row = await ask(mirror.agentId, 'cancel', { requester: controllerId, operationId: id, reason });
        if (row !== null && row.state !== 'running') finish(id, mirror, row);
      } catch (error) {
        const failure = toSeedwireError(error);
        if (failure.code !== 'SEEDWIRE_AGENT_OFFLINE' && failure.code !== 'SEEDWIRE_AGENT_UNKNOWN') throw failure;
        fail(id, mirror, new SeedwireError('SEEDWIRE_LOST', `no controller holds agent ${mirror.agentId} any more; cancel of ${id} could not be delivered and its outcome is unknown here`));
      }
      return mirror.operation;
    },
    stats() {
      let running = 0;
      for (const mirror of mirrors.values()) if (mirror.operation !== null && !mirror.ended) running++;
      return { started, running };
    },
    close() {
      closed = true;
      clearInterval(watchdog);
      streamSub?.unsubscribe();
      streamSub = null;
      for (const [id, mirror] of mirrors) fail(id, mirror, new SeedwireError('SEEDWIRE_SHUTTING_DOWN', `this controller is shutting down; operation ${id} runs on, held by another controller`));
    },
  };
}
