/**
 * GET /api/events: Server-Sent Events from the bus. Each viewer has a bounded queue; a viewer whose
 * socket stops draining loses the events it cannot take, and gets one `gap` {from, to} event in
 * their place once it drains again. Resume with Last-Event-ID or ?since=.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { SeedwireEventBus } from './bus.js';
import type { BusEvent } from './types.js';
import { DEFAULT_VIEWER_LIMITS, EventViewer, type ViewerFormat, type ViewerLimits, type ViewerSink, type ViewerStats } from './viewer.js';

export interface SseOptions {
  /** @default 15_000 ms between heartbeat comments */
  heartbeatMs?: number;
  /** @default 1000 events queued per viewer */
  maxQueuedEvents?: number;
  /** @default 1 MiB queued per viewer */
  maxQueuedBytes?: number;
}

export interface SseViewers {
  count(): number;
  /** Gaps sent and events dropped for slow viewers since start. */
  readonly stats: Readonly<ViewerStats>;
  /** Times a viewer fell behind (one gap each) and the events those viewers missed, since start. */
  drops(): { gaps: number; events: number };
  /** Ends every viewer's stream (shutdown). */
  closeAll(): void;
}

export function formatSseEvent(event: BusEvent, dataJson: string): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: {"seq":${event.seq},"type":"${event.type}","at":"${event.at}","data":${dataJson}}\n\n`;
}

function formatGap(from: number, to: number): string {
  const at = new Date().toISOString();
  return `id: ${to}\nevent: gap\ndata: {"seq":${to},"type":"gap","at":"${at}","data":{"from":${from},"to":${to}}}\n\n`;
}

const SSE_FORMAT: ViewerFormat = { event: formatSseEvent, gap: formatGap, heartbeat: () => ': heartbeat\n\n' };

function responseSink(res: ServerResponse): ViewerSink {
  return {
    write: (frame) => res.write(frame),
    onceDrain: (listener) => res.once('drain', listener),
    end: () => {
      if (!res.writableEnded) res.end();
    },
  };
}

/** Parses a cursor (a non-negative integer) or returns null. */
export function parseCursor(value: unknown): number | null {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

export function registerEventsRoute(app: FastifyInstance, bus: SeedwireEventBus, log: Logger, options: SseOptions = {}): SseViewers {
  const limits: ViewerLimits = {
    heartbeatMs: options.heartbeatMs ?? DEFAULT_VIEWER_LIMITS.heartbeatMs,
    maxQueuedEvents: options.maxQueuedEvents ?? DEFAULT_VIEWER_LIMITS.maxQueuedEvents,
    maxQueuedBytes: options.maxQueuedBytes ?? DEFAULT_VIEWER_LIMITS.maxQueuedBytes,
  };
  const stats: ViewerStats = { gaps: 0, droppedEvents: 0 };
  const viewers = new Set<EventViewer>();
  app.get('/api/events', (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const cursor = parseCursor(request.headers['last-event-id']) ?? parseCursor(query['since']);
    reply.hijack();
    const res = reply.raw;
    // Cluster mode: answered once this controller follows the fleet's events, so whatever the
    // client does after the answer is seen.
    void bus.prepare().then(() => {
      if (res.destroyed) return;
      startViewer(res, cursor);
    });
  });
  function startViewer(res: ServerResponse, cursor: number | null): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const viewer = new EventViewer(responseSink(res), SSE_FORMAT, bus, limits, stats, () => viewers.delete(viewer));
    res.on('close', () => viewer.close());
    res.on('error', () => viewer.close());
    viewers.add(viewer);
    log.debug({ viewers: viewers.size }, 'event viewer connected');
    viewer.writeFrame('retry: 2000\n\n');
    viewer.start(cursor);
  }
  return {
    count: () => viewers.size,
    stats,
    drops: () => ({ gaps: stats.gaps, events: stats.droppedEvents }),
    closeAll() {
      for (const viewer of [...viewers]) viewer.close();
    },
  };
}
