/**
 * A real protocol peer for controller tests: a `ws` client that speaks the agent side of the
 * protocol by hand (hello, enrollment, results, output), so tests drive the controller exactly as
 * an agent would. Like an agent, a peer that is sent an `enroll` frame keeps the credential and
 * confirms; pass a shared `credentials` book so a later peer of the same id presents it.
 */
import WebSocket from 'ws';
import { LIMITS } from '../../shared/limits.js';
import type { Frame, HelloFrame } from '../../shared/frames.js';

export interface PeerOptions {
  url: string;
  token?: string;
  agentId?: string;
  hello?: Partial<HelloFrame>;
  /** Answer the controller's pings (default true). */
  autoPong?: boolean;
  /** Confirm an enrollment at once (default true); false leaves the `enroll` frame to the test. */
  autoEnroll?: boolean;
  /** agentId → credential: presented instead of `token` when it holds the id; enrollments are written back. */
  credentials?: Map<string, string>;
  /** Extra ws client options (a client certificate for mutual TLS, a CA). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

export class TestPeer {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  closeCode: number | null = null;
  /** The credential this peer was enrolled with, if any. */
  credential: string | null = null;
  private waiters = new Set<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }>();
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly options: PeerOptions) {
    const bearer = options.credentials?.get(this.agentId) ?? options.token;
    this.ws = new WebSocket(options.url, {
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      ...(bearer === undefined ? {} : { headers: { authorization: `Bearer ${bearer}` } }),
      ...options.tls,
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const frame = JSON.parse(data.toString()) as Frame;
      // Answer pings like an agent would.
      if (frame.t === 'ping' && this.options.autoPong !== false) this.send({ t: 'pong', ts: frame.ts });
      if (frame.t === 'enroll') {
        this.credential = frame.credential;
        this.options.credentials?.set(frame.agentId, frame.credential);
        if (this.options.autoEnroll !== false) this.send({ t: 'enrolled', agentId: frame.agentId });
      }
      this.frames.push(frame);
      for (const waiter of [...this.waiters]) {
        if (waiter.match(frame)) {
          this.waiters.delete(waiter);
          waiter.resolve(frame);
        }
      }
    });
    this.closed = new Promise((resolve) =>
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  /** Resolves on the 'open' event, rejects with the HTTP status on an unexpected response. */
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve();
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
      this.ws.once('error', reject);
    });
  }

  get agentId(): string {
    return this.options.agentId ?? 'agent-1';
  }

  hello(extra: Partial<HelloFrame> = {}): void {
    const agentId = this.agentId;
    this.send({
      t: 'hello',
      v: LIMITS.protocolVersion,
      agentId,
      hostname: `${agentId}.test`,
      version: '0.0.0-test',
      capabilities: ['exec'],
      datacenter: 'dc1',
      bootId: 'boot-1',
      clock: Date.now(),
      pending: [],
      running: [],
      ...this.options.hello,
      ...extra,
    } as Frame);
  }

  /** Connects and completes the handshake; resolves with the welcome frame. */
  async connect(extra: Partial<HelloFrame> = {}): Promise<Frame> {
    await this.opened();
    const welcome = this.next((f) => f.t === 'welcome');
    this.hello(extra);
    return welcome;
  }

  send(frame: Frame | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** The next frame matching (including ones already received and not yet consumed by a match). */
  next<T extends Frame = Frame>(match: (frame: Frame) => boolean, timeoutMs = 10_000): Promise<T> {
    const seen = this.frames.find(match);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen as T);
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.map((f) => f.t))}`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (frame: Frame) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(frame), 1);
          resolve(frame as T);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Closes (idempotent) and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(1000);
    await this.closed;
  }
}
