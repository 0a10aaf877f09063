/**
 * Follows the controller's live feed, GET /api/events/ws, through reconnecting-websocket, which
 * keeps one socket open across drops and controller restarts without a page reload.
 *
 * The library is configured around its traps:
 * - its send queue replays whatever was sent while disconnected (`maxEnqueuedMessages: 0`: the
 *   only message, the hello, is sent from the open handler, on an open socket);
 * - its reconnect delay is drawn once per page (`minReconnectionDelay` jitters at load time),
 *   so every console would redial a restarted controller in lock-step: its own delay is set to
 *   0 and the URL provider, which it awaits before every attempt, waits a full-jitter backoff;
 * - a refused upgrade (401 after the admin token changed) is only a close event in a browser,
 *   so before redialling the provider asks the API, whose 401 sends the user to Login;
 * - once closed it cannot be restarted (its connect lock stays held): stop() drops the instance
 *   and start() makes a new one.
 *
 * The cursor (the bus epoch and last sequence seen) goes in the first message, never in the URL.
 * Whenever events may have been missed, `onResync` asks the view to re-fetch its data: on every
 * (re)open, on a `gap` the controller sends, and when the controller restarted in between.
 */
import ReconnectingWebSocket from 'reconnecting-websocket';
import { ApiError, request } from './api.js';
import { EVENT_TYPES, type LiveEvent } from './types.js';

export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'stopped';

export type ResyncReason = 'open' | 'gap' | 'restart';

export interface LiveHandlers {
  onEvent(event: LiveEvent): void;
  /**
   * `gap`: the controller dropped events this viewer could not take in time (`missed` = their
   * seq range); `restart`: the controller restarted while the page was away (what it did just
   * before stopping was not delivered).
   */
  onResync(reason: ResyncReason, missed?: { from: number; to: number }): void;
  onStatus(status: LiveStatus): void;
  /** The cursor moved (for diagnostics: shown as data attributes). */
  onCursor?(epoch: string, seq: number): void;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;
/** The controller sends a heartbeat every 15 s; three missed means the link is dead. */
const SILENCE_MS = 45_000;

export class LiveConnection {
  private socket: ReconnectingWebSocket | null = null;
  private status: LiveStatus = 'stopped';
  /** Attempts since the last accepted hello. */
  private failures = 0;
  private epoch: string | null = null;
  private lastSeq: number | null = null;
  private silence: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly path: string,
    private readonly handlers: LiveHandlers,
  ) {}

  get running(): boolean {
    return this.status !== 'stopped';
  }

  start(): void {
    if (this.running) return;
    this.failures = 0;
    this.setStatus('connecting');
    const socket: ReconnectingWebSocket = new ReconnectingWebSocket((): Promise<string> => this.nextUrl(socket), undefined, {
      maxEnqueuedMessages: 0,
      minReconnectionDelay: 0,
      maxReconnectionDelay: 0,
      reconnectionDelayGrowFactor: 1,
      connectionTimeout: 5_000,
    });
    this.socket = socket;
    socket.addEventListener('open', () => {
      if (this.socket !== socket) return;
      const hello: { type: 'hello'; epoch?: string; since?: number } = { type: 'hello' };
      if (this.epoch !== null && this.lastSeq !== null) {
        hello.epoch = this.epoch;
        hello.since = this.lastSeq;
      }
      socket.send(JSON.stringify(hello));
      this.armSilence(socket);
    });
    socket.addEventListener('message', (message) => {
      if (this.socket !== socket) return;
      this.armSilence(socket);
      this.receive(typeof message.data === 'string' ? message.data : '');
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.clearSilence();
      this.setStatus('reconnecting');
    });
  }

  stop(): void {
    this.clearSilence();
    const socket = this.socket;
    this.socket = null;
    socket?.close(1000, 'console stopped');
    this.setStatus('stopped');
  }

  /** Awaited by reconnecting-websocket before each attempt: the backoff and the auth probe live here. */
  private async nextUrl(socket: ReconnectingWebSocket): Promise<string> {
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}${this.path}`;
    const attempt = this.failures++;
    if (attempt === 0) return url;
    const cap = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt - 1, 10));
    await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
    if (this.socket !== socket) return url; // stopped meanwhile: the library sees its close flag and gives up
    try {
      await request('GET', '/api/audit?limit=1');
    } catch (err) {
      // A 401 has already stopped us (and shown Login); anything else: try the socket anyway.
      if (err instanceof ApiError && err.status === 401) return url;
    }
    return url;
  }

  private receive(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return; // a malformed frame must not break the feed
    }
    if (message === null || typeof message !== 'object') return;
    const m = message as { type?: unknown; seq?: unknown; epoch?: unknown; lastSeq?: unknown; data?: unknown };
    if (m.type === 'hello') {
      if (typeof m.epoch !== 'string') return;
      const restarted = this.epoch !== null && m.epoch !== this.epoch;
      this.epoch = m.epoch;
      if (restarted || this.lastSeq === null) this.lastSeq = typeof m.lastSeq === 'number' && !restarted ? m.lastSeq : 0;
      this.failures = 0;
      this.setStatus('open');
      this.handlers.onCursor?.(this.epoch, this.lastSeq);
      this.handlers.onResync(restarted ? 'restart' : 'open');
      return;
    }
    if (m.type === 'heartbeat' || typeof m.seq !== 'number' || !isEventType(m.type)) return;
    this.lastSeq = m.seq;
    if (this.epoch !== null) this.handlers.onCursor?.(this.epoch, m.seq);
    if (m.type === 'gap') this.handlers.onResync('gap', gapRange(m.data));
    else this.handlers.onEvent({ type: m.type, seq: m.seq, data: m.data });
  }

  private armSilence(socket: ReconnectingWebSocket): void {
    this.clearSilence();
    this.silence = setTimeout(() => {
      if (this.socket === socket) socket.reconnect(4000, 'no heartbeat');
    }, SILENCE_MS);
  }

  private clearSilence(): void {
    if (this.silence !== null) clearTimeout(this.silence);
    this.silence = null;
  }

  private setStatus(status: LiveStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.handlers.onStatus(status);
  }
}

function isEventType(value: unknown): value is LiveEvent['type'] {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

function gapRange(data: unknown): { from: number; to: number } | undefined {
  const d = data as { from?: unknown; to?: unknown } | null;
  return d !== null && typeof d === 'object' && typeof d.from === 'number' && typeof d.to === 'number' ? { from: d.from, to: d.to } : undefined;
}
