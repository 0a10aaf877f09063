/**
 * The agent's one dial-out link: a reconnect loop over `ws` (not reconnecting-websocket, which is
 * browser-oriented: it needs a ws subclass for headers and options, replays an unbounded send
 * queue after reconnecting, and draws one jitter per process).
 *
 * Per socket: open → send hello → wait for welcome (handshake timeout) → session. Heartbeats both
 * ways; a silent peer is terminated and redialed. Frames that cannot be sent are not queued here:
 * the owners of results and output (agent/dispatch/) keep what must survive a reconnect.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { decodeFrame } from '../../shared/codec.js';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { CLOSE_CODES, type EnrollFrame, type Frame, type HelloFrame, type WelcomeFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { createBackoff, type Backoff } from './backoff.js';
import { ControllerList } from './controllers.js';
import { silentPingMs, startHeartbeat, type Heartbeat } from './heartbeat.js';
import { LinkStatus } from './link-status.js';
import type { AgentIdentity } from './identity.js';
import { chooseProxy, describeProxy, describeTunnelFailure, openTunnel, type ProxySettings, type TunnelState } from './proxy.js';
import { parseRetryAfter, retryAfterDelay } from './retry-after.js';
import { createSession, type Session } from './session.js';
import { openSocket, type ClientCertificate, type SocketOptions } from './socket.js';
import type { Timing } from './timing.js';

export interface LinkHandlers {
  makeHello(): HelloFrame;
  onSession(session: Session, welcome: WelcomeFrame): void;
  /** Every text frame after the welcome except ping and pong. */
  onFrame(frame: Frame, session: Session): void;
  onBinary(data: Buffer, session: Session): void;
  onSessionEnd(session: Session): void;
}

export interface LinkOptions {
  /** The controllers' URLs, tried in order (controllers.ts); at least one. */
  controllers: readonly string[];
  socket: Omit<SocketOptions, 'url' | 'handshakeTimeoutMs' | 'keepAliveMs' | 'token'>;
  /** Decides the bearer token of each dial and stores the credential an enrollment hands out. */
  identity: AgentIdentity;
  ca: Buffer | undefined;
  clientCertificate?: ClientCertificate | undefined;
  /** The outbound proxy settings (config key or environment); absent: always dial directly. */
  proxy?: ProxySettings | undefined;
  timing: Timing;
  log: Logger;
  handlers: LinkHandlers;
  random?: () => number;
}

const CLOSE_WAIT_MS = LIMITS.closeWaitMs;
/** Bytes of a refused upgrade's body read for its error message. */
const REFUSAL_BODY_BYTES = 4096;

export interface Refusal {
  status: number;
  code: string | null;
  message: string;
  retryAfterSeconds: number | null;
}

/** Reads a non-101 answer to the upgrade: status, the JSON error's code and message, Retry-After. */
export function readRefusal(res: IncomingMessage): Promise<Refusal> {
  return new Promise((resolve) => {
    let body = '';
    const retryAfter = Number(res.headers['retry-after']);
    const finish = (): void => {
      let code: string | null = null;
      let message = `HTTP ${res.statusCode ?? 0}`;
      try {
        const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
        if (typeof parsed.error?.code === 'string') code = parsed.error.code;
        if (typeof parsed.error?.message === 'string') message = parsed.error.message;
      } catch {
        // not our JSON (a proxy's page): the status line says enough
      }
      resolve({ status: res.statusCode ?? 0, code, message, retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null });
    };
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      if (body.length < REFUSAL_BODY_BYTES) body += chunk.slice(0, REFUSAL_BODY_BYTES - body.length);
    });
    res.once('end', finish);
    res.once('error', finish);
  });
}

/** How one socket's life ended. */
interface SocketOutcome {
  /** How long it was welcomed (ms; 0 if it never was). */
  healthyForMs: number;
  /** The controller refused the upgrade with a Retry-After (ms), e.g. 503 while it paces a fleet. */
  retryAfterMs: number | null;
}

export class Link {
  private readonly stopper = new AbortController();
  private readonly backoff: Backoff;
  private readonly controllers: ControllerList;
  private loop: Promise<void> | undefined;
  private ws: WebSocket | undefined;
  private current: Session | undefined;
  /** The URL the welcomed session is on. */
  private currentUrl: string | undefined;
  /** Set by a move frame: the socket closing now is left for the selected controller, at once. */
  private moving = false;
  /** For the local status file and endpoint (agent/status/). */
  readonly status: LinkStatus;

  constructor(private readonly options: LinkOptions) {
    this.controllers = new ControllerList(options.controllers);
    this.status = new LinkStatus(this.controllers.current);
    this.backoff = createBackoff({
      baseMs: options.timing.reconnectBaseMs,
      capMs: options.timing.reconnectCapMs,
      healthyMs: options.timing.reconnectHealthyMs,
      ...(options.random ? { random: options.random } : {}),
    });
  }

  /** The welcomed session, if any. */
  get session(): Session | undefined {
    return this.current;
  }

  /** The URL of the controller the welcomed session is on (data connections dial it), if any. */
  get controller(): string | undefined {
    return this.currentUrl;
  }

  /**
   * A move frame: leave this controller for `url`, dialed at once. Obeyed only when `url` is one
   * of the configured controllers (a controller must not be able to send this agent's credential
   * to a host of its choosing); returns the refusal's reason, or null when obeyed or already there.
   */
  moveTo(url: string, reason: string): string | null {
    const { log } = this.options;
    const index = this.controllers.indexOf(url);
    if (index < 0) {
      log.warn({ to: url, reason, controllers: this.controllers.urls }, 'refused to move to a controller that is not in the configured list');
      return `move refused: ${url} is not one of this agent's configured controllers`;
    }
    const ws = this.ws;
    if (this.currentUrl !== undefined && this.controllers.indexOf(this.currentUrl) === index) return null;
    if (!ws || !this.current) return null;
    log.info({ from: this.currentUrl, to: this.controllers.urls[index], reason }, 'moving to another controller as asked');
    this.controllers.select(index);
    this.moving = true;
    ws.close(CLOSE_CODES.moved, 'moving to another controller');
    setTimeout(() => ws.terminate(), CLOSE_WAIT_MS).unref();
    return null;
  }

  start(): void {
    this.loop ??= this.runLoop().catch((error: unknown) => {
      this.options.log.error({ err: toSeedwireError(error) }, 'link loop failed');
    });
  }

  /** Closes the socket and ends the loop; idempotent. */
  async stop(): Promise<void> {
    this.stopper.abort();
    const ws = this.ws;
    if (ws && ws.readyState !== ws.CLOSED) {
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      ws.close(CLOSE_CODES.goingAway, 'agent shutting down');
      const timer = setTimeout(() => ws.terminate(), CLOSE_WAIT_MS);
      await closed;
      clearTimeout(timer);
    }
    await this.loop;
  }

  private async runLoop(): Promise<void> {
    const { timing, log } = this.options;
    const signal = this.stopper.signal;
    const random = this.options.random ?? Math.random;
    await sleep(Math.floor(random() * timing.startupJitterMs), signal);
    const controllers = this.controllers;
    const several = controllers.urls.length > 1;
    while (!signal.aborted) {
      const outcome = await this.connectOnce(controllers.current);
      if (signal.aborted) break;
      if (this.moving) {
        // Asked to move: the selected controller next, now, without counting a failure.
        this.moving = false;
        this.backoff.recordConnection(outcome.healthyForMs);
        continue;
      }
      if (outcome.retryAfterMs !== null) {
        // Queued by the controller, not failed: it is not dialed again before it asked, and the
        // backoff does not escalate. Another controller may be tried sooner, after a fresh jitter
        // so a herd refused together does not move together.
        controllers.holdOff(retryAfterDelay(outcome.retryAfterMs, timing.reconnectCapMs, random));
        controllers.advance();
        const delayMs = Math.max(controllers.heldFor(), several ? Math.floor(random() * timing.reconnectBaseMs) : 0);
        log.info({ delayMs, retryAfterMs: outcome.retryAfterMs, ...(several ? { controller: controllers.current } : {}) }, 'controller asked to retry later; redialing then');
        await sleep(delayMs, signal);
        continue;
      }
      // Lost, failed or refused: the next controller, after the one backoff shared by all of them.
      this.backoff.recordConnection(outcome.healthyForMs);
      controllers.advance();
      const delayMs = Math.max(this.backoff.nextDelay(), controllers.heldFor());
      log.info({ delayMs, attempt: this.backoff.attempt, ...(several ? { controller: controllers.current } : {}) }, 'redialing controller');
      await sleep(delayMs, signal);
    }
  }

  /** One socket's life; resolves when it is closed. */
  private async connectOnce(target: string): Promise<SocketOutcome> {
    const { timing, log, handlers, identity } = this.options;
    const bearer = identity.bearer();
    this.status.dialing(target);
    const route = this.options.proxy ? chooseProxy(target, this.options.proxy) : null;
    let tunnel: TunnelState | undefined;
    let agent;
    if (route) {
      try {
        ({ agent, tunnel } = await openTunnel(route));
      } catch (error) {
        const err = new SeedwireError('SEEDWIRE_PROXY', `cannot use proxy ${describeProxy(route.url)}: ${toSeedwireError(error).message}`, { cause: error });
        this.status.failed(err.message);
        log.error({ err: err.toJSON() }, 'dial through the proxy failed');
        return { healthyForMs: 0, retryAfterMs: null };
      }
      if (this.stopper.signal.aborted) return { healthyForMs: 0, retryAfterMs: null };
      log.debug({ proxy: describeProxy(route.url), source: route.source }, 'dialing the controller through a proxy');
    }
    const ws = openSocket(
      { ...this.options.socket, url: target, token: bearer.token, handshakeTimeoutMs: timing.handshakeTimeoutMs, keepAliveMs: timing.heartbeatMs ?? 20_000, agent },
      this.options.ca,
      this.options.clientCertificate,
    );
    this.ws = ws;
    const ended = new AbortController();
    let session: Session | undefined;
    let welcomedAt = 0;
    let heartbeat: Heartbeat | undefined;
    let handshakeTimer: NodeJS.Timeout | undefined;
    let refusedStatus: number | null = null;
    let retryAfterMs: number | null = null;
    const preSession = createSession('pre-welcome', ws, ended.signal);

    const reportBadFrame = (error: unknown): void => {
      const err = toSeedwireError(error, 'SEEDWIRE_BAD_FRAME');
      const details = err.details as { id?: string | null } | undefined;
      log.warn({ err: { code: err.code, message: err.message } }, 'bad frame from controller');
      (session ?? preSession).send({ t: 'error', id: details?.id ?? null, code: err.code, message: err.message });
    };

    const onWelcome = (welcome: WelcomeFrame): void => {
      clearTimeout(handshakeTimer);
      welcomedAt = performance.now();
      session = createSession(welcome.sessionId, ws, ended.signal);
      this.current = session;
      this.currentUrl = target;
      this.status.connected(welcome.sessionId);
      const deadAfterMs = timing.deadAfterMs ?? welcome.deadAfterMs;
      // A controller that pings its agents is answered, not pinged, while it talks; an agent told
      // its own heartbeatMs (config.advanced) pings on it regardless.
      const answerOnly = welcome.pingsAgents === true && timing.heartbeatMs === undefined;
      heartbeat = startHeartbeat({
        mode: answerOnly ? 'when-silent' : 'every',
        intervalMs: answerOnly ? silentPingMs(welcome.heartbeatMs, deadAfterMs) : (timing.heartbeatMs ?? welcome.heartbeatMs),
        deadAfterMs,
        sendPing: () => session?.send({ t: 'ping', ts: Date.now() }),
        onDead: () => {
          log.warn({ sessionId: welcome.sessionId }, 'controller silent past deadAfterMs; terminating');
          ws.terminate();
        },
      });
      log.info({ sessionId: welcome.sessionId, controller: target, skewMs: welcome.clock - Date.now() }, 'connected');
      handlers.onSession(session, welcome);
    };

    // Confirm only once the credential is durable: the controller commits the enrollment on
    // 'enrolled', so a crash before that leaves the id free to enroll again.
    const onEnroll = (frame: EnrollFrame): void => {
      identity.save(frame.agentId, frame.credential).then(
        () => preSession.send({ t: 'enrolled', agentId: frame.agentId }),
        (error: unknown) => {
          log.error({ err: toSeedwireError(error) }, 'cannot store the credential the controller issued; not confirming the enrollment');
          ws.close(CLOSE_CODES.protocolError, 'credential not stored');
        },
      );
    };

    const onText = (text: string): void => {
      let frame: Frame;
      try {
        frame = decodeFrame(text);
      } catch (error) {
        reportBadFrame(error);
        return;
      }
      if (frame.t === 'ping') {
        (session ?? preSession).send({ t: 'pong', ts: frame.ts });
        return;
      }
      if (frame.t === 'pong') return;
      if (!session) {
        if (frame.t === 'welcome') onWelcome(frame);
        else if (frame.t === 'enroll') onEnroll(frame);
        else if (frame.t === 'error') {
          this.status.failed(`${frame.code}: ${frame.message}`);
          log.warn({ code: frame.code, err: frame.message, presented: bearer.kind }, 'controller refused the handshake');
        } else log.debug({ t: frame.t }, 'frame before welcome ignored');
        return;
      }
      if (frame.t === 'welcome') return;
      handlers.onFrame(frame, session);
    };

    ws.on('open', () => {
      log.debug('socket open; sending hello');
      handshakeTimer = setTimeout(() => {
        log.warn({ timeoutMs: timing.handshakeTimeoutMs }, 'no welcome in time; closing');
        ws.close(CLOSE_CODES.handshakeTimeout, 'handshake timeout');
        setTimeout(() => ws.terminate(), CLOSE_WAIT_MS).unref();
      }, timing.handshakeTimeoutMs);
      preSession.send(handlers.makeHello());
    });
    ws.on('message', (data, isBinary) => {
      heartbeat?.touch();
      this.status.heard();
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (!isBinary) {
        onText(buf.toString('utf8'));
        return;
      }
      if (!session) return;
      try {
        handlers.onBinary(buf, session);
      } catch (error) {
        reportBadFrame(error);
      }
    });
    const heard = (): void => {
      heartbeat?.touch();
      this.status.heard();
    };
    ws.on('ping', heard);
    ws.on('pong', heard);
    ws.on('unexpected-response', (_req, res) => {
      refusedStatus = res.statusCode ?? 0;
      if (tunnel && tunnel.status !== 200) {
        // The proxy's answer to CONNECT, replayed as the response: not the controller's word, so
        // no identity or Retry-After handling; the usual backoff.
        const message = describeTunnelFailure(tunnel, target);
        this.status.failed(message);
        log.warn({ err: new SeedwireError('SEEDWIRE_PROXY', message).toJSON(), proxy: describeProxy(tunnel.route.url), status: refusedStatus }, 'proxy refused the tunnel to the controller');
        res.resume();
        ws.terminate();
        return;
      }
      // Queued (503 while the controller paces a fleet) or limited (429): wait as asked.
      if (refusedStatus === 503 || refusedStatus === 429) retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      // readRefusal never rejects (it resolves on 'end' and on 'error'), and this callback only logs.
      void readRefusal(res).then((refusal) => {
        this.status.failed(`controller refused the connection (${refusal.status}${refusal.code ? ` ${refusal.code}` : ''})`);
        if (refusal.status === 401) identity.refused(bearer.kind, refusal);
        else if (retryAfterMs !== null) log.info({ status: refusal.status, code: refusal.code, retryAfterMs }, 'controller refused the upgrade for now');
        else log.warn({ status: refusal.status, code: refusal.code, refusal: refusal.message }, 'controller refused the connection');
        ws.terminate();
      });
    });
    ws.on('error', (error) => {
      if (refusedStatus !== null) return; // already logged with the controller's reason
      if (tunnel && tunnel.status !== 200) {
        const message = describeTunnelFailure(tunnel, target, error);
        this.status.failed(message);
        log.warn({ err: new SeedwireError('SEEDWIRE_PROXY', message).toJSON(), cause: (error as NodeJS.ErrnoException).code, proxy: describeProxy(tunnel.route.url) }, 'dial through the proxy failed');
        return;
      }
      const message = (error.message.includes('401') ? 'controller refused the agent token (401)' : error.message) + (tunnel ? ` (through proxy ${describeProxy(tunnel.route.url)})` : '');
      this.status.failed(message);
      log.warn({ err: { message, code: (error as NodeJS.ErrnoException).code } }, 'socket error');
    });

    return new Promise<SocketOutcome>((resolve) => {
      ws.once('close', (code, reason) => {
        clearTimeout(handshakeTimer);
        heartbeat?.dispose();
        ended.abort(new SeedwireError('SEEDWIRE_DISCONNECTED', 'link to the controller dropped'));
        if (this.ws === ws) this.ws = undefined;
        this.status.disconnected();
        const healthyForMs = session ? performance.now() - welcomedAt : 0;
        if (session) {
          if (this.current === session) {
            this.current = undefined;
            this.currentUrl = undefined;
          }
          log.info({ sessionId: session.id, controller: target, code, reason: reason.toString() }, 'disconnected');
          handlers.onSessionEnd(session);
        } else if (code !== 1006 && refusedStatus === null) {
          // 1006 (no close frame) already came with a socket error; anything else is the controller's word.
          log.warn({ code, reason: reason.toString() }, 'controller closed the connection during the handshake');
        }
        resolve({ healthyForMs, retryAfterMs });
      });
    });
  }
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // stopped while waiting
  }
}

/** A random id for this process; a new one tells the controller in-memory state was lost. */
export function makeBootId(): string {
  return randomUUID();
}
