/**
 * The AgentHub: authenticates agents before the WebSocket upgrade, keeps one session per agent
 * (a newer connection supersedes the older one), routes RPC calls and their results, output and
 * progress, stores agents and facts, and owns the stream relay.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { ERROR_CODES, SeedwireError } from '../../shared/errors.js';
import { CLOSE_CODES, type Facts, type Frame, type HelloFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { AgentStore } from '../store/agents.js';
import { authenticateAgent, type AgentCredentials } from './auth.js';
import { CallFailedError, CallRegistry } from './calls.js';
import { createHubCounters, type HubCounters } from './counters.js';
import { Relay } from './relay.js';
import { AgentSession, SessionClose, type SessionHandlers, type SessionTiming } from './session.js';
import type { AgentHub, AgentInfo, CallOptions, CallOutcome, HubEvent } from './types.js';

export interface HubOptions {
  credentials: AgentCredentials;
  timing: SessionTiming;
  agents: AgentStore;
  log: Logger;
}

/** Called synchronously on every accepted hello, before any later frame of that session. */
export type ResumeHandler = (agentId: string, hello: HelloFrame) => void;

export interface ControllerHub extends AgentHub {
  readonly relay: Relay;
  readonly counters: HubCounters;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  setResumeHandler(handler: ResumeHandler): void;
  connectedCount(): number;
  /** Closes every session with 1001 and rejects waiting calls with SEEDWIRE_SHUTTING_DOWN (idempotent). */
  close(): Promise<void>;
}

const LAST_SEEN_WRITE_MS = 10_000;

function refuseUpgrade(socket: Duplex, status: number, code: keyof typeof ERROR_CODES, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

export function createAgentHub(options: HubOptions): ControllerHub {
  const { log, agents, timing } = options;
  const counters = createHubCounters();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: LIMITS.maxMessageBytes, clientTracking: false });
  const sessions = new Map<string, AgentSession>();
  const allSessions = new Set<AgentSession>();
  const calls = new CallRegistry();
  const listeners = new Set<(event: HubEvent) => void>();
  const agentWaiters = new Map<string, Set<() => void>>();
  const lastSeenWritten = new Map<string, number>();
  let resumeHandler: ResumeHandler = () => {};
  let closing = false;

  const relay = new Relay({ senderOf: (id) => sessions.get(id)?.sender ?? null }, counters, log.child({ component: 'relay' }));

  function emit(event: HubEvent): void {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (error) {
        log.error({ err: error, type: event.type }, 'hub listener threw');
      }
    }
  }

  function infoOf(agentId: string): AgentInfo | null {
    const session = sessions.get(agentId);
    const row = agents.get(agentId);
    if (session?.hello) {
      return {
        id: agentId,
        hostname: session.hello.hostname,
        datacenter: session.hello.datacenter,
        connected: true,
        connectedAt: session.connectedAt,
        lastSeenAt: new Date(session.lastInboundAt).toISOString(),
        version: session.hello.version,
        capabilities: session.hello.capabilities,
        clockSkewMs: session.clockSkewMs,
      };
    }
    if (!row) return null;
    return {
      id: row.id,
      hostname: row.hostname,
      datacenter: row.datacenter,
      connected: false,
      connectedAt: row.connectedAt,
      lastSeenAt: row.lastSeenAt,
      version: row.version,
      capabilities: row.capabilities,
      clockSkewMs: null,
    };
  }

  function touch(session: AgentSession, force: boolean): void {
    if (!session.agentId) return;
    const now = Date.now();
    if (!force && now - (lastSeenWritten.get(session.agentId) ?? 0) < LAST_SEEN_WRITE_MS) return;
    lastSeenWritten.set(session.agentId, now);
    agents.touch(session.agentId, new Date(session.lastInboundAt).toISOString());
  }

  function acceptHello(session: AgentSession, hello: HelloFrame): void {
    if (hello.v !== LIMITS.protocolVersion) {
      throw new SessionClose(CLOSE_CODES.versionMismatch, 'SEEDWIRE_PROTOCOL_VERSION', `protocol version ${hello.v} is not ${LIMITS.protocolVersion}`);
    }
    if (session.principal.kind === 'agent' && session.principal.agentId !== hello.agentId) {
      throw new SessionClose(1008, 'SEEDWIRE_AUTH', `the token does not belong to agent ${hello.agentId}`);
    }
    if (closing) throw new SessionClose(CLOSE_CODES.goingAway, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
    const now = Date.now();
    session.agentId = hello.agentId;
    session.hello = hello;
    session.connectedAt = new Date(now).toISOString();
    session.clockSkewMs = hello.clock - now;
    session.resumable = new Set([...hello.running, ...hello.pending]);
    session.log = session.log.child({ agentId: hello.agentId });
    const previous = sessions.get(hello.agentId);
    counters.sessions++;
    if (previous || agents.get(hello.agentId)) counters.reconnects++;
    sessions.set(hello.agentId, session);
    if (previous && previous !== session) previous.close(CLOSE_CODES.superseded, 'superseded by a newer connection');
    agents.upsertOnHello({
      id: hello.agentId,
      hostname: hello.hostname,
      datacenter: hello.datacenter,
      version: hello.version,
      capabilities: hello.capabilities,
      connectedAt: session.connectedAt,
    });
    lastSeenWritten.set(hello.agentId, now);
    session.sender.sendFrame({
      t: 'welcome',
      v: LIMITS.protocolVersion,
      sessionId: session.sessionId,
      clock: now,
      heartbeatMs: timing.heartbeatMs,
      deadAfterMs: timing.deadAfterMs,
    });
    session.log.info(
      { hostname: hello.hostname, version: hello.version, clockSkewMs: session.clockSkewMs, running: hello.running.length, pending: hello.pending.length, superseded: Boolean(previous) },
      'agent connected',
    );
    // Calls this process waits for that the agent no longer knows: their outcome is lost.
    for (const call of calls.ofAgent(hello.agentId)) {
      if (!session.resumable.has(call.id)) {
        calls.reject(call.id, new SeedwireError('SEEDWIRE_LOST', `agent ${hello.agentId} reconnected without call ${call.id} (op ${call.op})`));
      }
    }
    try {
      resumeHandler(hello.agentId, hello);
    } catch (error) {
      session.log.error({ err: error }, 'resume handler failed');
    }
    const waiters = agentWaiters.get(hello.agentId);
    agentWaiters.delete(hello.agentId);
    for (const wake of waiters ?? []) wake();
    emit({ type: 'agent-connected', agent: infoOf(hello.agentId)! });
  }

  function handleFrame(session: AgentSession, frame: Exclude<Frame, HelloFrame>): void {
    const agentId = session.agentId!;
    touch(session, false);
    switch (frame.t) {
      case 'result': {
        session.sender.sendFrame({ t: 'ack', ids: [frame.id] });
        const settled = calls.resolve(frame.id, { result: frame.result, exitCode: frame.exitCode ?? null, durationMs: frame.durationMs });
        if (!settled) session.log.info({ callId: frame.id }, 'result for a call nobody waits for; ignored');
        return;
      }
      case 'error': {
        if (frame.id === null) {
          session.log.warn({ code: frame.code, message: frame.message }, 'agent reported an error');
          return;
        }
        session.sender.sendFrame({ t: 'ack', ids: [frame.id] });
        const failure = new CallFailedError(frame.code as keyof typeof ERROR_CODES, frame.message, frame.exitCode ?? null, frame.details);
        if (!calls.reject(frame.id, failure)) session.log.info({ callId: frame.id, code: frame.code }, 'error for a call nobody waits for; ignored');
        return;
      }
      case 'output': {
        const call = calls.get(frame.id);
        if (!call) return void session.log.debug({ callId: frame.id }, 'output for an unknown call; ignored');
        if (frame.seq <= call.lastOutputSeq) return; // re-delivered after a reconnect
        call.lastOutputSeq = frame.seq;
        call.options.onOutput?.(frame);
        return;
      }
      case 'progress': {
        const call = calls.get(frame.id);
        if (!call) return void session.log.debug({ callId: frame.id }, 'progress for an unknown call; ignored');
        call.options.onProgress?.(frame.data);
        return;
      }
      case 'facts': {
        session.facts = frame.facts;
        agents.updateFacts(agentId, frame.facts);
        emit({ type: 'facts', agentId, facts: frame.facts });
        return;
      }
      case 'credit':
        relay.forwardCredit(agentId, frame);
        return;
      case 'ping':
      case 'pong':
        return;
      default:
        session.sendError(null, new SeedwireError('SEEDWIRE_BAD_FRAME', `unexpected '${frame.t}' frame from an agent`));
    }
  }

  const handlers: SessionHandlers = {
    hello: acceptHello,
    frame: handleFrame,
    data(session, buf) {
      touch(session, false);
      relay.forwardData(session.agentId!, buf);
    },
    closed(session, code, reason) {
      allSessions.delete(session);
      const agentId = session.agentId;
      if (!agentId || sessions.get(agentId) !== session) return; // superseded: the newer session owns the agent
      sessions.delete(agentId);
      counters.disconnects++;
      touch(session, true);
      for (const call of calls.ofAgent(agentId)) {
        if (call.options.onDisconnect === 'fail') {
          calls.reject(call.id, new SeedwireError('SEEDWIRE_DISCONNECTED', `agent ${agentId} disconnected during ${call.op}`));
        }
      }
      emit({ type: 'agent-disconnected', agent: infoOf(agentId)!, reason: `${code} ${reason}`.trim() });
    },
  };

  function call(agentId: string, op: string, params: Record<string, unknown>, callOptions: CallOptions = {}): Promise<CallOutcome> {
    return new Promise<CallOutcome>((resolve, reject) => {
      const { signal } = callOptions;
      if (closing) return reject(new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down'));
      if (signal?.aborted) return reject(new SeedwireError('SEEDWIRE_CANCELED', `${op} canceled before it started`));
      const session = sessions.get(agentId);
      if (!session) {
        return reject(
          agents.get(agentId)
            ? new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected`)
            : new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} has ever connected`),
        );
      }
      const id = callOptions.callId ?? randomUUID();
      if (calls.has(id)) return reject(new SeedwireError('SEEDWIRE_CONFLICT', `call ${id} is already in flight`));
      const onAbort = (): void => {
        sessions.get(agentId)?.sender.sendFrame({ t: 'cancel', id, reason: String(signal?.reason?.message ?? signal?.reason ?? 'canceled').slice(0, 1024) });
        calls.reject(id, new SeedwireError('SEEDWIRE_CANCELED', `${op} canceled`));
      };
      calls.add({
        id,
        agentId,
        op,
        options: callOptions,
        lastOutputSeq: -1,
        resolve: (outcome) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(outcome);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      // A call the agent reported in its hello is resumed, not re-sent.
      if (session.resumable.has(id)) return;
      const frame: Frame = callOptions.timeoutMs === undefined ? { t: 'call', id, op, params } : { t: 'call', id, op, params, timeoutMs: callOptions.timeoutMs };
      session.sender.sendFrame(frame);
    });
  }

  const hub: ControllerHub = {
    relay,
    counters,
    call,
    isConnected: (agentId) => sessions.has(agentId),
    agent: infoOf,
    facts(agentId): Facts | null {
      return sessions.get(agentId)?.facts ?? agents.get(agentId)?.facts ?? null;
    },
    waitForAgent(agentId, signal) {
      if (sessions.has(agentId)) return Promise.resolve();
      if (signal?.aborted) return Promise.reject(new SeedwireError('SEEDWIRE_CANCELED', 'wait for agent aborted'));
      return new Promise<void>((resolve, reject) => {
        const set = agentWaiters.get(agentId) ?? new Set<() => void>();
        agentWaiters.set(agentId, set);
        const onAbort = (): void => {
          set.delete(wake);
          reject(new SeedwireError('SEEDWIRE_CANCELED', 'wait for agent aborted'));
        };
        const wake = (): void => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
        set.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    on(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    setResumeHandler(handler) {
      resumeHandler = handler;
    },
    connectedCount: () => sessions.size,
    handleUpgrade(req, socket, head) {
      socket.on('error', (error) => log.debug({ err: error }, 'upgrade socket error'));
      const url = new URL(req.url ?? '/', 'http://controller');
      if (url.pathname !== '/agent') return refuseUpgrade(socket, 404, 'SEEDWIRE_NOT_FOUND', `no WebSocket endpoint at ${url.pathname}`);
      if (closing) return refuseUpgrade(socket, 503, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
      const principal = authenticateAgent(req.headers.authorization, options.credentials);
      if (!principal) {
        log.warn({ remote: req.socket.remoteAddress }, 'agent refused: missing or wrong bearer token');
        return refuseUpgrade(socket, 401, 'SEEDWIRE_AUTH', 'missing or wrong bearer token');
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const session = new AgentSession(ws, principal, timing, handlers, counters, log.child({ component: 'hub' }));
        allSessions.add(session);
        ws.on('close', () => allSessions.delete(session));
      });
    },
    async close() {
      if (closing) return;
      closing = true;
      calls.rejectAll(new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down'));
      relay.dispose();
      const closed = [...allSessions].map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.ws.readyState === session.ws.CLOSED) return resolve();
            session.ws.once('close', () => resolve());
            session.close(CLOSE_CODES.goingAway, 'controller shutting down');
          }),
      );
      await Promise.all(closed);
      for (const set of agentWaiters.values()) set.clear();
      agentWaiters.clear();
      listeners.clear();
      wss.close();
    },
  };
  return hub;
}
