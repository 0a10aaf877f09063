/**
 * GET /api/events/ws: the console's live feed as a WebSocket. The same bus, cursor and gap
 * semantics as /api/events (SSE), through the same bounded per-viewer queue (viewer.ts).
 *
 * Auth is checked before the upgrade: the admin bearer or session cookie, as for /api/*; a token
 * in the URL is never read. A browser's `Origin` must name this controller's host, so a page on
 * another site cannot ride the session cookie. The cursor travels in the first message, not in
 * the URL (URLs end up in logs):
 *
 *   client → {"type":"hello","epoch":"<epoch>","since":<seq>}   (both optional)
 *   server → {"type":"hello","epoch":"<epoch>","lastSeq":<seq>,"resumed":<bool>}
 *   server → {"seq","type","at","data"}  (events and gaps, as the SSE data lines)
 *   server → {"type":"heartbeat"}        (every heartbeatMs, so a client can tell a dead link)
 *
 * A cursor is only meaningful for the bus that numbered it: sequence numbers restart with every
 * controller process, so a hello from another epoch is answered `resumed: false` and the viewer
 * gets this bus's whole ring (with a gap if part of it is gone).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { ERROR_CODES } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import { ADMIN_COOKIE, readCookie } from '../api/auth.js';
import { compareSecret, readBearer } from '../hub/secret.js';
import type { SeedwireEventBus } from './bus.js';
import { DEFAULT_VIEWER_LIMITS, EventViewer, type ViewerFormat, type ViewerLimits, type ViewerSink, type ViewerStats } from './viewer.js';

export const EVENTS_WS_PATH = '/api/events/ws';

export interface EventsSocketOptions extends Partial<ViewerLimits> {
  bus: SeedwireEventBus;
  adminToken: string;
  log: Logger;
  /** @default 10_000 ms for the client's hello */
  helloTimeoutMs?: number;
  /** @default 256 KiB written but not yet flushed to the socket before the viewer queues instead */
  highWaterBytes?: number;
}

export interface EventsSocket {
  /** Whether an upgrade request is for this endpoint. */
  handles(req: IncomingMessage): boolean;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  count(): number;
  readonly stats: Readonly<ViewerStats>;
  /** Refuses new viewers and closes every open one with 1001 (shutdown). */
  closeAll(): void;
}

const Hello = z
  .object({
    type: z.literal('hello'),
    epoch: z.string().max(64).optional(),
    since: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict();

const WS_FORMAT: ViewerFormat = {
  event: (event, dataJson) => `{"seq":${event.seq},"type":"${event.type}","at":"${event.at}","data":${dataJson}}`,
  gap: (from, to) => `{"seq":${to},"type":"gap","at":"${new Date().toISOString()}","data":{"from":${from},"to":${to}}}`,
  heartbeat: () => '{"type":"heartbeat"}',
};

/** Close codes this endpoint uses (RFC 6455 §7.4). */
const CLOSE = { goingAway: 1001, policy: 1008 } as const;

function refuseUpgrade(socket: Duplex, status: 401 | 403 | 503, code: keyof typeof ERROR_CODES, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Service Unavailable';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () =>
    socket.destroy(),
  );
}

/** A browser's Origin must name the host it connects to; clients without one (curl, scripts) are not browsers. */
export function checkOrigin(origin: string | undefined, host: string | undefined): string | null {
  if (origin === undefined) return null;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return `Origin ${JSON.stringify(origin)} is not a URL`;
  }
  if (!host || originHost.toLowerCase() !== host.toLowerCase()) return `Origin ${origin} does not match this controller (${host ?? 'no Host header'})`;
  return null;
}

/**
 * A sink over a ws socket. ws has no 'drain' for its users, but each send's callback fires once
 * the frame is flushed to the kernel, so bytes sent and not yet flushed measure the backlog.
 */
function socketSink(ws: WebSocket, highWaterBytes: number): ViewerSink {
  let unflushed = 0;
  let drainListener: (() => void) | null = null;
  return {
    write(frame) {
      if (ws.readyState !== ws.OPEN) return true;
      const size = Buffer.byteLength(frame);
      unflushed += size;
      ws.send(frame, (error) => {
        unflushed -= size;
        if (error) return; // the socket is closing; 'close' ends the viewer
        if (unflushed === 0 && drainListener) {
          const listener = drainListener;
          drainListener = null;
          listener();
        }
      });
      return unflushed < highWaterBytes;
    },
    onceDrain(listener) {
      drainListener = listener;
    },
    end() {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(CLOSE.goingAway, 'controller shutting down');
    },
  };
}

export function createEventsSocket(options: EventsSocketOptions): EventsSocket {
  const { bus, adminToken, log } = options;
  const limits: ViewerLimits = {
    heartbeatMs: options.heartbeatMs ?? DEFAULT_VIEWER_LIMITS.heartbeatMs,
    maxQueuedEvents: options.maxQueuedEvents ?? DEFAULT_VIEWER_LIMITS.maxQueuedEvents,
    maxQueuedBytes: options.maxQueuedBytes ?? DEFAULT_VIEWER_LIMITS.maxQueuedBytes,
  };
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
  const highWaterBytes = options.highWaterBytes ?? 256 * 1024;
  // The client only ever sends its hello: a small payload limit keeps a misbehaving one cheap.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 4096, clientTracking: false });
  const sockets = new Set<WebSocket>();
  const viewers = new Set<EventViewer>();
  const stats: ViewerStats = { gaps: 0, droppedEvents: 0 };
  let closing = false;

  function isAuthorized(req: IncomingMessage): boolean {
    const presented = readBearer(req.headers.authorization) ?? readCookie(req.headers.cookie, ADMIN_COOKIE);
    return presented !== null && compareSecret(presented, adminToken);
  }

  function serve(ws: WebSocket): void {
    sockets.add(ws);
    let viewer: EventViewer | null = null;
    let alive = true;
    const helloTimer = setTimeout(() => ws.close(CLOSE.policy, 'no hello'), helloTimeoutMs);
    const liveness = setInterval(() => {
      // A browser answers pings by itself; no pong within a heartbeat means the link is dead.
      if (!alive) return ws.terminate();
      alive = false;
      ws.ping();
    }, limits.heartbeatMs);
    liveness.unref();
    ws.on('pong', () => {
      alive = true;
    });
    ws.on('error', (error) => log.debug({ err: error }, 'console feed socket error'));
    ws.on('close', () => {
      clearTimeout(helloTimer);
      clearInterval(liveness);
      sockets.delete(ws);
      viewer?.close();
    });
    ws.on('message', (data, isBinary) => {
      if (viewer) return; // only the first message means anything
      clearTimeout(helloTimer);
      let hello: z.infer<typeof Hello>;
      try {
        const parsed = Hello.safeParse(isBinary ? null : JSON.parse(String(data)));
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          return ws.close(CLOSE.policy, `bad hello: ${issue?.path.join('.') || 'message'}: ${issue?.message ?? 'invalid'}`.slice(0, LIMITS.closeReasonChars));
        }
        hello = parsed.data;
      } catch {
        return ws.close(CLOSE.policy, 'bad hello: not JSON');
      }
      const resumed = hello.epoch === bus.epoch && hello.since !== undefined;
      // Another epoch's cursor means nothing here: replay this bus from its start instead.
      const cursor = resumed ? hello.since! : hello.epoch !== undefined && hello.epoch !== bus.epoch ? 0 : null;
      const current = new EventViewer(socketSink(ws, highWaterBytes), WS_FORMAT, bus, limits, stats, () => viewers.delete(current));
      viewer = current;
      viewers.add(current);
      // Cluster mode: the hello goes once this controller follows the fleet's events.
      void bus.prepare().then(() => {
        if (ws.readyState !== ws.OPEN) return;
        current.writeFrame(JSON.stringify({ type: 'hello', epoch: bus.epoch, lastSeq: bus.lastSeq, resumed }));
        current.start(cursor);
        log.debug({ viewers: viewers.size, resumed }, 'console feed viewer connected');
      });
    });
  }

  return {
    handles(req) {
      return (req.url ?? '/').split('?')[0] === EVENTS_WS_PATH;
    },
    handleUpgrade(req, socket, head) {
      socket.on('error', (error) => log.debug({ err: error }, 'console feed upgrade socket error'));
      if (closing) return refuseUpgrade(socket, 503, 'SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
      const originProblem = checkOrigin(req.headers.origin, req.headers.host);
      if (originProblem !== null) {
        log.warn({ origin: req.headers.origin }, 'console feed refused: foreign origin');
        return refuseUpgrade(socket, 403, 'SEEDWIRE_FORBIDDEN', originProblem);
      }
      if (!isAuthorized(req)) {
        log.info({ remote: req.socket.remoteAddress }, 'console feed refused: missing or wrong admin token');
        return refuseUpgrade(socket, 401, 'SEEDWIRE_AUTH', 'missing or wrong admin bearer token or session cookie');
      }
      wss.handleUpgrade(req, socket, head, serve);
    },
    count: () => viewers.size,
    stats,
    closeAll() {
      closing = true;
      for (const viewer of [...viewers]) viewer.close();
      for (const ws of [...sockets]) ws.close(CLOSE.goingAway, 'controller shutting down');
      wss.close();
    },
  };
}
