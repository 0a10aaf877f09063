/**
 * One agent connection: handshake timer, heartbeats, frame parsing. Policy (what a hello means,
 * where results go) lives in the hub, which receives parsed frames through SessionHandlers. The
 * hub drives liveness for all sessions from one sweep (checkLiveness), not a timer per session.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { decodeFrame } from '../../shared/codec.js';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { CLOSE_CODES, type EnrolledFrame, type Facts, type Frame, type HelloFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { CONTROLLER_LIMITS } from '../limits.js';
import type { AgentPrincipal } from './auth.js';
import type { HubCounters } from './counters.js';
import { Sender } from './sender.js';
import type { IdentityView } from './types.js';

export interface SessionTiming {
  heartbeatMs: number;
  deadAfterMs: number;
  handshakeTimeoutMs: number;
}

/** A failure that ends the session with a close code. */
export class SessionClose extends SeedwireError {
  constructor(
    readonly closeCode: number,
    code: ConstructorParameters<typeof SeedwireError>[0],
    message: string,
  ) {
    super(code, message);
  }
}

export interface SessionHandlers {
  /**
   * Throws SessionClose to refuse the hello. 'open' once welcomed; 'enrolling' when the agent must
   * first confirm it stored the credential it was sent (then `enrolled` completes the handshake).
   */
  hello(session: AgentSession, frame: HelloFrame): Promise<'open' | 'enrolling'>;
  /** Rejects with SessionClose to refuse; welcomes the agent otherwise. */
  enrolled(session: AgentSession, frame: EnrolledFrame): Promise<void>;
  frame(session: AgentSession, frame: Exclude<Frame, HelloFrame>): void;
  data(session: AgentSession, buf: Buffer): void;
  closed(session: AgentSession, code: number, reason: string): void;
}

/** 'admitting': a hello or an enrollment is being decided (store reads); the socket is paused meanwhile. */
type State = 'handshake' | 'admitting' | 'enrolling' | 'open' | 'closed';

/**
 * A heartbeat exactly as both ends encode it (JSON.stringify of {t, ts}). At rest a fleet sends
 * little else, so these skip the JSON parse and the schema; anything else, a heartbeat written
 * differently included, takes the full decoder.
 */
const HEARTBEAT = /^\{"t":"(ping|pong)","ts":(\d{1,15})\}$/;

/** The sweep period for sessions with this timing (the hub runs one sweep for all). */
export function livenessSweepMs(timing: SessionTiming): number {
  const every = Math.max(CONTROLLER_LIMITS.livenessTickMinMs, Math.min(timing.heartbeatMs, Math.floor(timing.deadAfterMs / CONTROLLER_LIMITS.livenessChecksPerDeadPeriod)));
  return Math.min(every, CONTROLLER_LIMITS.livenessSweepMaxMs);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class AgentSession {
  readonly sessionId = randomUUID();
  readonly sender: Sender;
  agentId: string | null = null;
  hello: HelloFrame | null = null;
  facts: Facts | null = null;
  connectedAt: string | null = null;
  lastInboundAt = Date.now();
  clockSkewMs: number | null = null;
  /** The agent's identity as read at its welcome (what its connect and disconnect events carry). */
  identity: IdentityView | null = null;
  /** Call ids the agent reported running or pending in its hello (resumable without re-sending). */
  resumable = new Set<string>();
  /** While enrolling: the hello to welcome and the hash of the credential sent, committed on `enrolled`. */
  enrollment: { hello: HelloFrame; credentialHash: string } | null = null;
  log: Logger;
  private state: State = 'handshake';
  private lastPingAt = 0;
  /** When the agent last pinged us: our pong to it already tells it we are alive. */
  private lastAgentPingAt = 0;
  private readonly handshakeTimer: NodeJS.Timeout;
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly ws: WebSocket,
    readonly principal: AgentPrincipal,
    /** The peer's address, for rate limits and the audit. */
    readonly remoteAddress: string,
    private readonly timing: SessionTiming,
    private readonly handlers: SessionHandlers,
    private readonly counters: HubCounters,
    log: Logger,
  ) {
    this.log = log.child({ sessionId: this.sessionId });
    this.sender = new Sender(ws, counters);
    this.handshakeTimer = setTimeout(() => this.close(CLOSE_CODES.handshakeTimeout, 'no hello in time'), timing.handshakeTimeoutMs);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('error', (error) => this.log.warn({ err: error }, 'agent socket error'));
    ws.on('close', (code, reason) => this.onClosed(code, reason.toString()));
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Not yet welcomed (no hello, or an enrollment not yet confirmed). */
  get isHandshaking(): boolean {
    return this.state === 'handshake' || this.state === 'admitting' || this.state === 'enrolling';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Closes with a code; a socket that does not finish the closing handshake is terminated. */
  close(code: number, reason: string): void {
    if (this.state === 'closed' || this.closeTimer) return;
    // 'agent session closed' follows at info with the code and reason; a line each here would
    // double what a herd of timed-out handshakes writes.
    this.log.debug({ code, reason }, 'closing agent session');
    try {
      this.ws.close(code, reason.slice(0, LIMITS.closeReasonChars));
    } catch {
      this.ws.terminate();
    }
    this.closeTimer = setTimeout(() => this.ws.terminate(), LIMITS.closeWaitMs);
    this.closeTimer.unref();
  }

  sendError(id: string | null, error: SeedwireError): void {
    this.sender.sendFrame({ t: 'error', id, code: error.code, message: error.message.slice(0, CONTROLLER_LIMITS.errorFrameMessageChars) });
  }

  /**
   * Called by the hub's sweep: terminates a silent agent, and pings an open one. An agent that
   * pinged us within the period heard our pong, which keeps its link and any NAT mapping alive
   * just as our ping would; it is pinged only every livenessRttEveryPeriods periods, to sample
   * the round trip. That halves the frames a fleet at rest costs.
   */
  checkLiveness(now: number): void {
    if (this.state === 'closed') return;
    if (now - this.lastInboundAt > this.timing.deadAfterMs) {
      this.log.warn({ silentMs: now - this.lastInboundAt }, 'agent silent too long; terminating');
      this.ws.terminate();
      return;
    }
    if (this.state !== 'open') return;
    const { heartbeatMs } = this.timing;
    const sinceOurs = now - this.lastPingAt;
    if (sinceOurs < heartbeatMs) return;
    if (now - this.lastAgentPingAt < heartbeatMs && sinceOurs < heartbeatMs * CONTROLLER_LIMITS.livenessRttEveryPeriods) return;
    this.lastPingAt = now;
    this.sender.sendFrame({ t: 'ping', ts: now });
  }

  private receiveHeartbeat(kind: string, ts: number): void {
    if (kind === 'ping') {
      this.lastAgentPingAt = this.lastInboundAt;
      this.sender.sendFrame({ t: 'pong', ts });
      return;
    }
    // The agent echoes our ping's ts; only our own clock is involved.
    const rttMs = Date.now() - ts;
    if (rttMs >= 0 && rttMs < this.timing.deadAfterMs) this.counters.observeHeartbeatRtt(rttMs / 1000);
  }

  private receive(data: RawData, isBinary: boolean): void {
    this.lastInboundAt = Date.now();
    this.counters.framesIn++;
    if (this.state === 'closed') return;
    if (isBinary) {
      if (this.state !== 'open') return this.refuse(null, new SeedwireError('SEEDWIRE_BAD_FRAME', 'binary frame before the handshake'), true);
      try {
        this.handlers.data(this, toBuffer(data));
      } catch (error) {
        this.refuse(null, toSeedwireError(error, 'SEEDWIRE_BAD_FRAME'), false);
      }
      return;
    }
    const text = toBuffer(data).toString('utf8');
    if (this.state === 'open' && text.length <= 64) {
      const beat = HEARTBEAT.exec(text);
      if (beat) return this.receiveHeartbeat(beat[1]!, Number(beat[2]));
    }
    let frame: Frame;
    try {
      frame = decodeFrame(text);
    } catch (error) {
      const failure = toSeedwireError(error, 'SEEDWIRE_BAD_FRAME');
      const details = failure.details as { id?: string | null } | undefined;
      return this.refuse(details?.id ?? null, failure, this.state === 'handshake');
    }
    if (this.state === 'handshake') {
      if (frame.t !== 'hello') return this.refuse(null, new SeedwireError('SEEDWIRE_BAD_FRAME', `expected 'hello', got '${frame.t}'`), true);
      this.acceptHello(frame);
      return;
    }
    if (this.state === 'admitting') {
      if (frame.t === 'ping' || frame.t === 'pong') return;
      return this.refuse(null, new SeedwireError('SEEDWIRE_BAD_FRAME', `'${frame.t}' before the controller answered the hello`), true);
    }
    if (this.state === 'enrolling') {
      if (frame.t === 'ping' || frame.t === 'pong') return;
      if (frame.t !== 'enrolled') return this.refuse(null, new SeedwireError('SEEDWIRE_BAD_FRAME', `expected 'enrolled', got '${frame.t}'`), true);
      this.acceptEnrolled(frame);
      return;
    }
    if (frame.t === 'hello') return this.refuse(null, new SeedwireError('SEEDWIRE_BAD_FRAME', 'hello after the handshake'), false);
    if (frame.t === 'ping' || frame.t === 'pong') return this.receiveHeartbeat(frame.t, frame.ts);
    try {
      this.handlers.frame(this, frame);
    } catch (error) {
      this.log.error({ err: error, t: frame.t }, 'frame handler failed');
      this.sendError('id' in frame && typeof frame.id === 'string' ? frame.id : null, toSeedwireError(error));
    }
  }

  /**
   * Frames that follow are not read until the handshake step is decided: the socket is paused, so
   * the agent's first frames after its welcome meet an open session.
   */
  private admit(step: () => Promise<'open' | 'enrolling'>): void {
    this.state = 'admitting';
    this.ws.pause();
    step().then(
      (next) => {
        if (this.state === 'closed') return;
        this.state = next;
        // The hello timeout keeps running through an enrollment: a peer that never confirms is closed.
        if (next === 'open') clearTimeout(this.handshakeTimer);
        this.ws.resume();
      },
      (error: unknown) => {
        if (this.state === 'closed') return;
        this.refuseHandshake(error);
      },
    );
  }

  private acceptHello(frame: HelloFrame): void {
    this.admit(() => this.handlers.hello(this, frame));
  }

  private acceptEnrolled(frame: EnrolledFrame): void {
    this.admit(async () => {
      await this.handlers.enrolled(this, frame);
      return 'open';
    });
  }

  private refuseHandshake(error: unknown): void {
    const failure = toSeedwireError(error);
    this.sendError(null, failure);
    this.close(error instanceof SessionClose ? error.closeCode : CLOSE_CODES.protocolError, failure.message);
  }

  private refuse(id: string | null, error: SeedwireError, fatal: boolean): void {
    this.counters.badFrames++;
    this.log.warn({ code: error.code, id, fatal }, `bad frame from agent: ${error.message}`);
    this.sendError(id, error);
    if (fatal) this.close(CLOSE_CODES.protocolError, error.message);
  }

  private onClosed(code: number, reason: string): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.sender.close();
    this.log.info({ code, reason }, 'agent session closed');
    if (wasOpen) this.handlers.closed(this, code, reason);
  }
}
