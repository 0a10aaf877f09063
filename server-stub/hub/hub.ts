/**
 * The AgentHub: authenticates agents before the WebSocket upgrade, enrolls new agent ids, keeps one
 * session per agent (a newer connection proving the same identity supersedes the older one), routes
 * RPC calls and their results, output and progress, stores agents and facts, and owns the stream relay.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { DATA_CONNECTIONS_CAPABILITY, DATA_PATH } from '../../shared/data-link.js';
import { ERROR_CODES, SeedwireError } from '../../shared/errors.js';
import { CLOSE_CODES, OUTPUT_ACKS_CAPABILITY, type EnrolledFrame, type Facts, type Frame, type HelloFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { OpName, OpParamsInput, OpResultOf } from '../../shared/ops.js';
import { CONTROLLER_LIMITS } from '../limits.js';
import type { AgentRow, AgentStore } from '../store/agents.js';
import { hashCredential, type IdentityRow, type IdentityStore } from '../store/identities.js';
import type { Audit } from '../types.js';
import { authenticateAgent, type AgentCredentials, type AgentPrincipal, type AuthOutcome } from './auth.js';
import { createAdmission, type AdmissionOptions } from './admission.js';
import { CallFailedError, CallRegistry } from './calls.js';
import { readCertificateIdentity } from './client-cert.js';
import { createHubCounters, type HubCounters } from './counters.js';
import { EXPOSURE_DEFAULTS, ExposureGuard, type ExposureOptions } from './exposure.js';
import { readDataClaim, readWebSocketHandshake } from './data-upgrade.js';
import { writeSwitchingProtocols } from './data-peer.js';
import { decideHello, makeCredential } from './identity.js';
import { DATA_PIPE_DEFAULTS } from './data-pipe.js';
import { Relay } from './relay.js';
import { AgentSession, livenessSweepMs, SessionClose, type SessionHandlers, type SessionTiming } from './session.js';
import type { AgentHub, AgentInfo, CallOptions, CallOutcome, HubEvent, IdentityView, RawCallOptions } from './types.js';
import { checkedProgress, checkResult } from './contract.js';

export interface HubOptions {
  credentials: AgentCredentials;
  timing: SessionTiming;
  agents: AgentStore;
  identities: IdentityStore;
  audit: Audit;
  /** Rate limits and caps for strangers; defaults in EXPOSURE_DEFAULTS. */
  exposure?: Partial<ExposureOptions>;
  log: Logger;
  /** Pacing of new sessions (server-stub/hub/admission.ts); defaults in ADMISSION_DEFAULTS. */
  admission?: Partial<AdmissionOptions>;
  /** Controllers sharing the store's fleet (cluster mode), read by admission. @default 1 */
  controllers?: () => number;
}

/**
 * Prepares the resume of an accepted hello (store reads) before the agent is welcomed, and returns
 * what runs synchronously once it is, before any later frame of that session.
 */
export type ResumeHandler = (agentId: string, hello: HelloFrame) => Promise<() => void>;

export interface ControllerHub extends AgentHub {
  readonly relay: Relay;
  readonly counters: HubCounters;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  setResumeHandler(handler: ResumeHandler): void;
  connectedCount(): number;
  /** Upgrades being authenticated plus sessions without a hello yet (or enrolling): what maxPendingHandshakes caps. */
  pendingHandshakes(): number;
  /** Whether the id is enrolled, revoked or re-admitted, and how it proves itself. */
  identity(agentId: string): Promise<IdentityView>;
  /** Revokes the id's credential (or token, or certificate) and disconnects it; SEEDWIRE_AGENT_UNKNOWN for an unknown id. */
  revoke(agentId: string): Promise<IdentityView>;
  /** Lets a revoked id enroll once more; SEEDWIRE_CONFLICT when it is not revoked. */
  readmit(agentId: string): Promise<IdentityView>;
  /** Closes every session with 1001 and rejects waiting calls with SEEDWIRE_SHUTTING_DOWN (idempotent). */
  close(): Promise<void>;
}


const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' };

function refuseUpgrade(socket: Duplex, status: number, code: keyof typeof ERROR_CODES, message: string, retryAfterSeconds?: number): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = STATUS_TEXT[status] ?? 'Error';
  const retryAfter = retryAfterSeconds === undefined ? '' : `Retry-After: ${retryAfterSeconds}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retryAfter}Connection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

/** How a session proved who it is, for logs and the audit. */
function proofOf(session: AgentSession): string {
  return session.principal.kind === 'enrollment' ? 'enrollment-token' : session.principal.via;
}

export function createAgentHub(options: HubOptions): ControllerHub {
  const { log, agents, identities, audit, timing } = options;
  const exposure = new ExposureGuard({ ...EXPOSURE_DEFAULTS, ...options.exposure }, log.child({ component: 'exposure' }));
  /**
   * Upgraded sessions not yet welcomed (no hello, or enrolling, or their store writes): capped by
   * exposure.options.maxPendingHandshakes. A session whose welcome admission holds back leaves it.
   */
  const handshaking = new Set<AgentSession>();
  /** Upgrades whose credential is being looked up in the store (they count toward the same cap). */
  let authenticating = 0;
  const counters = createHubCounters();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: LIMITS.maxMessageBytes, clientTracking: false });
  const sessions = new Map<string, AgentSession>();
  const allSessions = new Set<AgentSession>();
  const calls = new CallRegistry();
  const listeners = new Set<(event: HubEvent) => void>();
  const agentWaiters = new Map<string, Set<() => void>>();
  const lastSeenWritten = new Map<string, number>();
  /** Facts of agents that disconnected from this process (a connected one's are on its session). */
  const lastFacts = new Map<string, Facts>();
  let resumeHandler: ResumeHandler = async () => () => {};
  /** Agents the store knows, for admission pacing: read at start, counted up as new ids arrive. */
  let knownAgents = 0;
  agents.count().then(
    (n) => {
      knownAgents = Math.max(knownAgents, n);
    },
    (error: unknown) => log.warn({ err: error }, 'could not count the known agents'),
  );
  /** A store write nobody waits for (last seen, facts): a failure is logged, the next write catches up. */
  function background(what: string, write: Promise<unknown>): void {
    write.catch((error: unknown) => log.warn({ err: error }, `store write failed: ${what}`));
  }
  let closing = false;
  // Admission backs off when the event loop lags (server-stub/hub/admission.ts).
  const loopDelay = monitorEventLoopDelay({ resolution: CONTROLLER_LIMITS.admissionDelayResolutionMs });
  loopDelay.enable();
  const admission = createAdmission(
    {
      knownAgents: () => knownAgents,
      connectedAgents: () => sessions.size,
      controllers: () => options.controllers?.() ?? 1,
      eventLoopDelayMs() {
        const ms = loopDelay.percentile(99) / 1e6;
        loopDelay.reset();
        return ms;
      },
    },
    options.admission,
  );
  let admissionLoggedAt = 0;
  // One sweep for every session's liveness and pings (a timer per session cost 10,000 timers).
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const session of allSessions) session.checkLiveness(now);
  }, livenessSweepMs(timing));
  sweep.unref();

  /** Paces new sessions; true when this upgrade was answered 503 with a Retry-After. */
  function pacedOut(socket: Duplex, principal: AgentPrincipal): boolean {
    const decision = admission.admit(principal.kind === 'agent' ? principal.agentId : undefined);
    if (decision.admitted) return false;
    const now = Date.now();
    if (now - admissionLoggedAt >= CONTROLLER_LIMITS.admissionLogMs) {
      admissionLoggedAt = now;
      const { fleet, herd, waiting, load, eventLoopDelayMs } = admission.state();
      log.info(
        { refused: admission.takeRefusedCount(), ratePerSecond: decision.ratePerSecond, retryAfterSeconds: decision.retryAfterSeconds, fleet, herd, waiting, load, eventLoopDelayMs },
        'agent upgrades paced: answered 503 with Retry-After',
      );
    }
    counters.upgradesPaced++;
    refuseUpgrade(socket, 503, 'SEEDWIRE_BUSY', `too many agents connecting; retry after ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
    return true;
  }

  /**
   * Whether a session held here offered `capability` in its hello (false while it is not
   * connected here). For this process's own links only: a seed chooses its content hash from the
   * agents' stored capabilities (hub.agent), since a choice from a session that just dropped
   * made a resumed lane start over (seed/transfer.ts).
   */
  const offers = (agentId: string, capability: string): boolean => sessions.get(agentId)?.hello?.capabilities.includes(capability) ?? false;
  const relay = new Relay(
    {
      senderOf: (id) => sessions.get(id)?.sender ?? null,
      dialsDataConnections: (id) => offers(id, DATA_CONNECTIONS_CAPABILITY),
    },
    counters,
    log.child({ component: 'relay' }),
    { pipe: { ...DATA_PIPE_DEFAULTS, heartbeatMs: timing.heartbeatMs } },
  );

  /**
   * A data connection (`/data`): its stream token and claim are checked before the upgrade; it
   * never presents the agent's token, and nothing here logs the stream token.
   */
  function handleDataUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, remote: string): void {
    const retryAfter = exposure.retryAfterSeconds(remote);
    if (retryAfter !== null) {
      exposure.noteRefusal(remote, 'rate-limited');
      return refuseUpgrade(socket, 429, 'SEEDWIRE_RATE_LIMITED', `too many failed authentications from ${remote}; retry in ${retryAfter} s`, retryAfter);
    }
    const refuse = (status: number, code: keyof typeof ERROR_CODES, message: string): void => {
      counters.dataRefused++;
      log.info({ remote, status, code, refusal: message }, 'data connection refused');
      refuseUpgrade(socket, status, code, message);
    };
    const handshake = readWebSocketHandshake(req);
    if (!handshake.ok) return refuse(handshake.status, handshake.code, handshake.message);
    const parsed = readDataClaim(req.headers);
    if (!parsed.ok) {
      if (parsed.status === 401) exposure.recordFailure(remote, 'missing-token');
      return refuse(parsed.status, parsed.code, parsed.message);
    }
    const { token, claim } = parsed;
    // With mutual TLS the certificate names the agent: a data connection may not claim another.
    const certificate = readCertificateIdentity(req.socket as TLSSocket);
    if (certificate.error !== null) return refuse(401, 'SEEDWIRE_AUTH', certificate.error);
    if (certificate.agentId !== null && certificate.agentId !== claim.agentId) {
      return refuse(403, 'SEEDWIRE_FORBIDDEN', `the client certificate is ${certificate.agentId}'s, not ${claim.agentId}'s`);
    }
    const verdict = relay.admitData(token, claim);
    if (!verdict.ok) {
      if (verdict.unknown) exposure.recordFailure(remote, 'wrong-token');
      return refuse(verdict.status, verdict.code, verdict.message);
    }
    // The relay streams frames itself, so the handshake is answered here rather than by ws (server-stub/hub/data-peer.ts).
    if (!socket.readable || !socket.writable) return void socket.destroy();
    writeSwitchingProtocols(socket, handshake.key);
    log.debug({ stream: claim.stream, agentId: claim.agentId, role: claim.role, remote }, 'data connection open');
    relay.attachData(claim.stream, claim.role, socket, head);
  }

  function emit(event: HubEvent): void {
    for (const listener of [...listeners]) {
      try {
        listener(event);
      } catch (error) {
        log.error({ err: error, type: event.type }, 'hub listener threw');
      }
    }
  }

  function viewIdentity(agentId: string, row: IdentityRow | null): IdentityView {
    if (row) return { state: row.state, method: row.method, enrolledAt: row.enrolledAt, revokedAt: row.revokedAt, readmittedAt: row.readmittedAt };
    const method = Object.hasOwn(options.credentials.perAgent, agentId) ? 'token' : null;
    return { state: 'unenrolled', method, enrolledAt: null, revokedAt: null, readmittedAt: null };
  }

  async function identityOf(agentId: string): Promise<IdentityView> {
    return viewIdentity(agentId, await identities.get(agentId));
  }

  /** What a session says of its agent, with its identity as read at the welcome. */
  function infoOfSession(session: AgentSession, connected: boolean): AgentInfo {
    const hello = session.hello!;
    return {
      ...(session.identity ? { identity: session.identity } : {}),
      id: hello.agentId,
      hostname: hello.hostname,
      datacenter: hello.datacenter,
      connected,
      connectedAt: session.connectedAt,
      lastSeenAt: new Date(session.lastInboundAt).toISOString(),
      version: hello.version,
      capabilities: hello.capabilities,
      clockSkewMs: connected ? session.clockSkewMs : null,
    };
  }

  function infoOfRow(row: AgentRow, identity: IdentityRow | null): AgentInfo {
    const session = sessions.get(row.id);
    if (session?.hello) return { ...infoOfSession(session, true), identity: viewIdentity(row.id, identity) };
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
      identity: viewIdentity(row.id, identity),
    };
  }

  async function infoOf(agentId: string): Promise<AgentInfo | null> {
    const session = sessions.get(agentId);
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
        identity: await identityOf(agentId),
      };
    }
    const [row, identity] = await Promise.all([agents.get(agentId), identities.get(agentId)]);
    return row ? infoOfRow(row, identity) : null;
  }

  /**
   * Records an agent's last-seen time, at most once per lastSeenWriteMs (unless `force`: its
   * session ended). Writes are batched: a fleet's heartbeats become a few statements a second,
   * not one per agent; an ended session's time goes out on the next turn of the event loop.
   */
  function touch(session: AgentSession, force: boolean): void {
    if (!session.agentId) return;
    const now = Date.now();
    if (!force && now - (lastSeenWritten.get(session.agentId) ?? 0) < CONTROLLER_LIMITS.lastSeenWriteMs) return;
    lastSeenWritten.set(session.agentId, now);
    seenPending.set(session.agentId, new Date(session.lastInboundAt).toISOString());
    if (force) seenFlushSoon ??= setImmediate(() => void flushSeen());
    else seenFlushTimer ??= setTimeout(() => void flushSeen(), CONTROLLER_LIMITS.lastSeenFlushMs);
  }
  const seenPending = new Map<string, string>();
  let seenFlushTimer: NodeJS.Timeout | undefined;
  let seenFlushSoon: NodeJS.Immediate | undefined;
  function flushSeen(): Promise<void> {
    clearTimeout(seenFlushTimer);
    clearImmediate(seenFlushSoon);
    seenFlushTimer = undefined;
    seenFlushSoon = undefined;
    if (seenPending.size === 0) return Promise.resolve();
    const entries = [...seenPending];
    seenPending.clear();
    return agents.touchMany(entries).catch((error: unknown) => log.warn({ err: error, agents: entries.length }, 'store write failed: last seen'));
  }

  /**
   * Refuses a hello or an enrollment: audited and in the summary log line. Not counted toward the
   * address's limit: the peer holds a valid token, so the limit would only lock out its neighbours.
   */
  async function refuseIdentity(session: AgentSession, agentId: string, closeCode: number, message: string): Promise<never> {
    exposure.noteRefusal(session.remoteAddress, 'identity');
    await audit.record({ actor: 'system', agentId, action: 'agent:connect', outcome: 'refused', message: `SEEDWIRE_AUTH: ${message}`, params: { remote: session.remoteAddress, proof: proofOf(session) } });
    throw new SessionClose(closeCode, 'SEEDWIRE_AUTH', message);
  }

  async function acceptHello(session: AgentSession, hello: HelloFrame): Promise<'open' | 'enrolling'> {
    if (hello.v !== LIMITS.protocolVersion) {
      throw new SessionClose(CLOSE_CODES.versionMismatch, 'SEEDWIRE_PROTOCOL_VERSION', `protocol version ${hello.v} is not ${LIMITS.protocolVersion}`);
    }
    if (closing) throw new SessionClose(CLOSE_CODES.goingAway, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
    const decision = decideHello(session.principal, hello.agentId, {
      hasOwnToken: (id) => Object.hasOwn(options.credentials.perAgent, id),
      identity: await identities.get(hello.agentId),
      connected: sessions.has(hello.agentId),
    });
    if (decision.action === 'refuse') return refuseIdentity(session, hello.agentId, decision.closeCode, decision.message);
    if (decision.action === 'enroll') {
      // Nothing is stored until the agent confirms it saved the credential: an agent that dies
      // mid-enrollment leaves the id free to enroll again.
      const credential = makeCredential();
      session.enrollment = { hello, credentialHash: hashCredential(credential) };
      session.sender.sendFrame({ t: 'enroll', agentId: hello.agentId, credential });
      // Per agent, so at debug: a fleet enrolling at once would write thousands of lines; the audit keeps each enrollment.
      session.log.debug({ agentId: hello.agentId }, 'enrolling agent; credential sent');
      return 'enrolling';
    }
    if (session.principal.kind === 'agent' && session.principal.via !== 'credential') {
      await identities.noteAdmitted(hello.agentId, session.principal.via, new Date().toISOString());
    }
    await welcome(session, hello);
    return 'open';
  }

  async function acceptEnrolled(session: AgentSession, frame: EnrolledFrame): Promise<void> {
    const pending = session.enrollment;
    if (!pending || frame.agentId !== pending.hello.agentId) {
      throw new SessionClose(CLOSE_CODES.protocolError, 'SEEDWIRE_BAD_FRAME', `'enrolled' for agent ${frame.agentId} does not answer this connection's enrollment`);
    }
    const agentId = pending.hello.agentId;
    // Another connection may have enrolled or connected the id meanwhile: the first to confirm wins.
    if (sessions.has(agentId) || !(await identities.enroll(agentId, pending.credentialHash, new Date().toISOString()))) {
      await refuseIdentity(session, agentId, CLOSE_CODES.identityRefused, `agent ${agentId} was enrolled by another connection first`);
    }
    session.enrollment = null;
    await welcome(session, pending.hello);
    await audit.record({ actor: 'system', agentId, action: 'agent:enroll', outcome: 'succeeded', params: { remote: session.remoteAddress } });
  }

  /**
   * The store reads and writes first; from the session's registration to its welcome frame and
   * the resume of its calls, nothing awaits, so no frame of the agent's falls in between.
   */
  async function welcome(session: AgentSession, hello: HelloFrame): Promise<void> {
    const connectedAt = new Date().toISOString();
    const known = (await agents.get(hello.agentId)) !== null;
    await agents.upsertOnHello({
      id: hello.agentId,
      hostname: hello.hostname,
      datacenter: hello.datacenter,
      version: hello.version,
      capabilities: hello.capabilities,
      connectedAt,
    });
    if (!known) knownAgents++;
    const resume = await resumeHandler(hello.agentId, hello);
    const identity = await identityOf(hello.agentId);
    // Its hello said and stored, the agent no longer counts toward the cap on pending handshakes,
    // which bounds peers that have not got this far; admission bounds those held below (at most
    // the rate times welcomeMaxWaitMs). Counted in while held, a paced herd filled the cap and every
    // other dial of the herd was refused with Retry-After 1 before admission could see it
    // (measured: 3,000 refused dials a second, 10,000 agents in 78–86 s).
    handshaking.delete(session);
    // Upgrades were paced when they arrived; handshakes that stalled together on the store are
    // paced again here, so a herd is not welcomed in one burst (0 for a lone agent: no wait).
    const hold = admission.welcomeDelayMs();
    if (hold > 0) {
      counters.welcomesHeld++;
      await delay(hold);
    }
    if (session.isClosed) return;
    if (closing) throw new SessionClose(CLOSE_CODES.goingAway, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
    const now = Date.now();
    session.agentId = hello.agentId;
    session.hello = hello;
    session.connectedAt = connectedAt;
    session.clockSkewMs = hello.clock - now;
    session.identity = identity;
    session.resumable = new Set([...hello.running, ...hello.pending]);
    session.log = session.log.child({ agentId: hello.agentId });
    const previous = sessions.get(hello.agentId);
    counters.sessions++;
    if (previous || known) counters.reconnects++;
    sessions.set(hello.agentId, session);
    lastFacts.delete(hello.agentId);
    if (previous && previous !== session) previous.close(CLOSE_CODES.superseded, 'superseded by a newer connection');
    lastSeenWritten.set(hello.agentId, now);
    session.sender.sendFrame({
      t: 'welcome',
      v: LIMITS.protocolVersion,
      sessionId: session.sessionId,
      clock: now,
      heartbeatMs: timing.heartbeatMs,
      deadAfterMs: timing.deadAfterMs,
      acksOutput: true,
      pingsAgents: true,
    });
    relay.replayCredit(hello.agentId);
    session.log.info(
      { hostname: hello.hostname, version: hello.version, clockSkewMs: session.clockSkewMs, running: hello.running.length, pending: hello.pending.length, superseded: Boolean(previous), proof: proofOf(session) },
      'agent connected',
    );
    // Calls this process waits for that the agent no longer knows: their outcome is lost.
    for (const call of calls.ofAgent(hello.agentId)) {
      if (!session.resumable.has(call.id)) {
        calls.reject(call.id, new SeedwireError('SEEDWIRE_LOST', `agent ${hello.agentId} reconnected without call ${call.id} (op ${call.op})`));
      }
    }
    try {
      resume();
    } catch (error) {
      session.log.error({ err: error }, 'resume handler failed');
    }
    const waiters = agentWaiters.get(hello.agentId);
    agentWaiters.delete(hello.agentId);
    for (const wake of waiters ?? []) wake();
    emit({ type: 'agent-connected', agent: infoOfSession(session, true) });
  }

  /**
   * Acks go out on the next turn of the event loop, several per frame: the caller's answer (an API
   * response waiting on the result) is written first, and a busy agent's results share one ack.
   * An ack lost with its connection only means the agent sends the result again.
   */
  const pendingAcks = new Map<AgentSession, string[]>();
  let ackFlush: NodeJS.Immediate | undefined;
  function ackSoon(session: AgentSession, id: string): void {
    const ids = pendingAcks.get(session);
    if (ids) ids.push(id);
    else pendingAcks.set(session, [id]);
    ackFlush ??= setImmediate(flushAcks);
  }
  /**
   * Stored output is acknowledged the same way, to the agent's session of the moment (an ack names
   * a call and a seq, so any session of the agent may carry it), only to agents that offer it.
   */
  const pendingOutputAcks = new Map<string, Map<string, number>>();
  function ackOutputSoon(agentId: string, callId: string, seq: number): void {
    const acks = pendingOutputAcks.get(agentId) ?? new Map<string, number>();
    pendingOutputAcks.set(agentId, acks);
    acks.set(callId, Math.max(seq, acks.get(callId) ?? -1));
    ackFlush ??= setImmediate(flushAcks);
  }
  function flushAcks(): void {
    ackFlush = undefined;
    for (const [session, ids] of pendingAcks) {
      if (session.isClosed) continue;
      for (let i = 0; i < ids.length; i += LIMITS.maxAckIds) session.sender.sendFrame({ t: 'ack', ids: ids.slice(i, i + LIMITS.maxAckIds) });
    }
    pendingAcks.clear();
    for (const [agentId, acks] of pendingOutputAcks) {
      const session = sessions.get(agentId);
      if (!session || session.isClosed || !session.hello?.capabilities.includes(OUTPUT_ACKS_CAPABILITY)) continue;
      const output = [...acks].map(([id, seq]) => ({ id, seq }));
      for (let i = 0; i < output.length; i += LIMITS.maxAckIds) session.sender.sendFrame({ t: 'ack', ids: [], output: output.slice(i, i + LIMITS.maxAckIds) });
    }
    pendingOutputAcks.clear();
  }

  function handleFrame(session: AgentSession, frame: Exclude<Frame, HelloFrame>): void {
    const agentId = session.agentId!;
    touch(session, false);
    switch (frame.t) {
      case 'result': {
        ackSoon(session, frame.id);
        const settled = calls.resolve(frame.id, { result: frame.result, exitCode: frame.exitCode ?? null, durationMs: frame.durationMs });
        if (!settled) session.log.info({ callId: frame.id }, 'result for a call nobody waits for; ignored');
        return;
      }
      case 'error': {
        if (frame.id === null) {
          session.log.warn({ code: frame.code, message: frame.message }, 'agent reported an error');
          return;
        }
        ackSoon(session, frame.id);
        const failure = new CallFailedError(frame.code as keyof typeof ERROR_CODES, frame.message, frame.exitCode ?? null, frame.details);
        if (!calls.reject(frame.id, failure)) session.log.info({ callId: frame.id, code: frame.code }, 'error for a call nobody waits for; ignored');
        return;
      }
      case 'output': {
        const call = calls.get(frame.id);
        if (!call) return void session.log.debug({ callId: frame.id }, 'output for an unknown call; ignored');
        if (call.lastOutputSeq !== null && frame.seq <= call.lastOutputSeq) {
          // Sent again after a reconnect: acknowledged again once stored (the earlier ack may
          // have been lost with the link); one still being stored is acknowledged when it is.
          if (frame.seq <= call.storedOutputSeq) ackOutputSoon(agentId, call.id, call.storedOutputSeq);
          return;
        }
        const lost = call.lastOutputSeq === null ? 0 : frame.seq - call.lastOutputSeq - 1;
        call.lastOutputSeq = frame.seq;
        const stored = call.options.onOutput?.(frame, lost);
        const acknowledge = (): void => {
          call.storedOutputSeq = Math.max(call.storedOutputSeq, frame.seq);
          ackOutputSoon(agentId, call.id, frame.seq);
        };
        // Not stored: not acknowledged (the agent sends it again after its next reconnect); the
        // storing side logged why.
        if (stored) void stored.then(acknowledge, () => undefined);
        else acknowledge();
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
        background('facts', agents.updateFacts(agentId, frame.facts));
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
    enrolled: acceptEnrolled,
    frame: handleFrame,
    data(session, buf) {
      touch(session, false);
      counters.controlDataFrames++;
      relay.forwardData(session.agentId!, buf);
    },
    closed(session, code, reason) {
      allSessions.delete(session);
      const agentId = session.agentId;
      if (!agentId || sessions.get(agentId) !== session) return; // superseded: the newer session owns the agent
      sessions.delete(agentId);
      if (session.facts) lastFacts.set(agentId, session.facts);
      counters.disconnects++;
      touch(session, true);
      for (const call of calls.ofAgent(agentId)) {
        if (call.options.onDisconnect === 'fail') {
          calls.reject(call.id, new SeedwireError('SEEDWIRE_DISCONNECTED', `agent ${agentId} disconnected during ${call.op}`));
        }
      }
      emit({ type: 'agent-disconnected', agent: infoOfSession(session, false), reason: `${code} ${reason}`.trim() });
    },
  };

  /** A call checked against the op's contract: its progress and its result (shared/ops.ts). */
  async function call<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, callOptions: CallOptions<N> = {}): Promise<CallOutcome<OpResultOf<N>>> {
    const { onProgress, ...rest } = callOptions;
    let badProgressLogged = false;
    const raw: RawCallOptions = onProgress
      ? {
          ...rest,
          onProgress: checkedProgress(op, onProgress, (field, message) => {
            if (badProgressLogged) return;
            badProgressLogged = true;
            log.warn({ agentId, op, field, message }, 'progress of the wrong shape dropped');
          }),
        }
      : rest;
    const outcome = await rawCall(agentId, op, params, raw);
    return { ...outcome, result: checkResult(agentId, op, outcome.result) };
  }

  async function rawCall(agentId: string, op: OpName, params: Record<string, unknown>, callOptions: RawCallOptions): Promise<CallOutcome> {
    // A connected agent's call is registered and sent before this returns (a resumed call must be
    // waited for before the agent's next frame); only the refusal of an absent agent reads the store.
    if (!closing && !callOptions.signal?.aborted && !sessions.has(agentId)) {
      throw (await agents.get(agentId))
        ? new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected`)
        : new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} has ever connected`);
    }
    return new Promise<CallOutcome>((resolve, reject) => {
      const { signal } = callOptions;
      if (closing) return reject(new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down'));
      if (signal?.aborted) return reject(new SeedwireError('SEEDWIRE_CANCELED', `${op} canceled before it started`));
      const session = sessions.get(agentId);
      if (!session) {
        return reject(new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected`));
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
        // Unknown for a call resumed from an older store: its first frame then marks nothing lost.
        lastOutputSeq: callOptions.lastOutputSeq ?? (sessions.get(agentId)?.resumable.has(id) ? null : -1),
        storedOutputSeq: callOptions.lastOutputSeq ?? -1,
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

  /** The upgrade of an agent whose credential was checked (or refused). */
  function upgradeAuthenticated(req: IncomingMessage, socket: Duplex, head: Buffer, remote: string, outcome: AuthOutcome): void {
    if (socket.destroyed) return;
    if (closing) return refuseUpgrade(socket, 503, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
    // A limited address may still present what cannot be guessed (an enrolled credential, a
    // verified certificate), so one misconfigured host behind a NAT does not lock out its
    // enrolled neighbours; tokens an operator chose wait until the window ends.
    const retryAfter = exposure.retryAfterSeconds(remote);
    if (retryAfter !== null && !(outcome.ok && outcome.principal.kind === 'agent' && outcome.principal.via !== 'token')) {
      exposure.noteRefusal(remote, 'rate-limited');
      return refuseUpgrade(socket, 429, 'SEEDWIRE_RATE_LIMITED', `too many failed authentications from ${remote}; retry in ${retryAfter} s`, retryAfter);
    }
    if (!outcome.ok) {
      if (outcome.reason === 'unknown-credential') exposure.noteRefusal(remote, 'unknown-credential');
      else exposure.recordFailure(remote, outcome.reason === 'missing' ? 'missing-token' : outcome.reason === 'revoked' ? 'revoked' : 'wrong-token');
      return refuseUpgrade(socket, 401, 'SEEDWIRE_AUTH', outcome.message);
    }
    if (pacedOut(socket, outcome.principal)) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new AgentSession(ws, outcome.principal, remote, timing, handlers, counters, log.child({ component: 'hub' }));
      allSessions.add(session);
      handshaking.add(session);
      ws.on('close', () => {
        allSessions.delete(session);
        handshaking.delete(session);
      });
    });
  }

  const hub: ControllerHub = {
    relay,
    counters,
    call,
    isConnected: (agentId) => sessions.has(agentId),
    agent: infoOf,
    async agents() {
      const [rows, identityRows] = await Promise.all([agents.list(), identities.list()]);
      const identityOfId = new Map(identityRows.map((row) => [row.agentId, row]));
      return rows.map((row) => infoOfRow(row, identityOfId.get(row.id) ?? null));
    },
    facts(agentId): Facts | null {
      return sessions.get(agentId)?.facts ?? lastFacts.get(agentId) ?? null;
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
    move(agentId, url, reason) {
      const session = sessions.get(agentId);
      if (!session) return false;
      session.log.info({ to: url, reason }, 'asking the agent to move to another controller');
      session.sender.sendFrame({ t: 'move', url, reason });
      return true;
    },
    setResumeHandler(handler) {
      resumeHandler = handler;
    },
    connectedCount: () => sessions.size,
    pendingHandshakes: () => handshaking.size + authenticating,
    handleUpgrade(req, socket, head) {
      socket.on('error', (error) => log.debug({ err: error }, 'upgrade socket error'));
      const url = new URL(req.url ?? '/', 'http://controller');
      if (url.pathname !== '/agent' && url.pathname !== DATA_PATH) return refuseUpgrade(socket, 404, 'SEEDWIRE_NOT_FOUND', `no WebSocket endpoint at ${url.pathname}`);
      if (closing) return refuseUpgrade(socket, 503, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
      const remote = req.socket.remoteAddress ?? 'unknown';
      if (url.pathname === DATA_PATH) return handleDataUpgrade(req, socket, head, remote);
      if (handshaking.size + authenticating >= exposure.options.maxPendingHandshakes) {
        exposure.noteRefusal(remote, 'too-many-pending');
        return refuseUpgrade(socket, 503, 'SEEDWIRE_TOO_MANY_CONNECTIONS', 'too many agent connections are waiting for their hello; retry later', 1);
      }
      const certificate = readCertificateIdentity(req.socket as TLSSocket);
      authenticating++;
      const authenticated: Promise<AuthOutcome> =
        certificate.error !== null
          ? Promise.resolve({ ok: false, reason: 'wrong', message: certificate.error })
          : authenticateAgent({ authorization: req.headers.authorization, certificateId: certificate.agentId }, options.credentials, identities);
      authenticated
        .then(
          (outcome) => upgradeAuthenticated(req, socket, head, remote, outcome),
          (error: unknown) => {
            log.error({ err: error, remote }, 'agent authentication failed');
            refuseUpgrade(socket, 503, 'SEEDWIRE_INTERNAL', 'the controller could not check the credential; retry later', 1);
          },
        )
        .finally(() => {
          authenticating--;
        });
    },
    identity: identityOf,
    async revoke(agentId) {
      const known = await identities.get(agentId);
      if (!known && !(await agents.get(agentId))) throw new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} has ever connected`);
      const method = known?.method ?? (Object.hasOwn(options.credentials.perAgent, agentId) ? 'token' : 'credential');
      await identities.revoke(agentId, method, new Date().toISOString());
      for (const session of allSessions) {
        if (session.agentId === agentId || session.enrollment?.hello.agentId === agentId) session.close(CLOSE_CODES.identityRefused, 'revoked by an operator');
      }
      emit({ type: 'identity', agentId });
      return identityOf(agentId);
    },
    async readmit(agentId) {
      if (!(await identities.readmit(agentId, new Date().toISOString()))) {
        if (!(await identities.get(agentId)) && !(await agents.get(agentId))) throw new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} has ever connected`);
        throw new SeedwireError('SEEDWIRE_CONFLICT', `agent ${agentId} is not revoked (state ${(await identityOf(agentId)).state}); only a revoked agent can be readmitted`);
      }
      emit({ type: 'identity', agentId });
      return identityOf(agentId);
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
      await flushSeen();
      exposure.dispose();
      clearInterval(sweep);
      loopDelay.disable();
      for (const set of agentWaiters.values()) set.clear();
      agentWaiters.clear();
      listeners.clear();
      wss.close();
    },
  };
  return hub;
}
