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

/** Parses a cursor (a non-negative integer) or returns null. */
export function parseCursor(value: unknown): number | null {
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

interface DropCounts {
  gaps: number;
  events: number;
}

class Viewer {
  private queue: Array<{ seq: number; text: string }> = [];
  private queuedBytes = 0;
  private gap: { from: number; to: number } | null = null;
  private waitingDrain = false;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly res: ServerResponse,
    private readonly bus: SeedwireEventBus,
    private readonly options: Required<SseOptions>,
    private readonly onClose: () => void,
    private readonly drops: DropCounts,
  ) {
    this.heartbeat = setInterval(() => {
      if (!this.waitingDrain) this.write(': heartbeat\n\n');
    }, options.heartbeatMs);
    this.heartbeat.unref();
    res.on('close', () => this.close());
    res.on('error', () => this.close());
  }

  start(cursor: number | null, subscribe: (fn: (event: BusEvent) => void) => () => void): void {
    this.write('retry: 2000\n\n');
    if (cursor !== null) {
      let missed = this.bus.since(cursor);
      if (missed === null) {
        const first = this.bus.firstSeq;
        this.write(formatGap(cursor + 1, first - 1));
        missed = this.bus.since(first - 1) ?? [];
      }
      for (const event of missed) this.push(event);
    }
    const unsubscribe = subscribe((event) => this.push(event));
    this.unsubscribe = unsubscribe;
    if (this.closed) unsubscribe();
  }

  private unsubscribe: () => void = () => {};

  push(event: BusEvent): void {
    if (this.closed) return;
    if (this.gap) {
      this.gap.to = event.seq;
      this.drops.events++;
      return;
    }
    const text = formatSseEvent(event, this.bus.serialized(event));
    if (!this.waitingDrain) {
      this.write(text);
      return;
    }
    if (this.queue.length + 1 > this.options.maxQueuedEvents || this.queuedBytes + text.length > this.options.maxQueuedBytes) {
      this.gap = { from: this.queue[0]?.seq ?? event.seq, to: event.seq };
      this.drops.gaps++;
      this.drops.events += this.queue.length + 1;
      this.queue = [];
      this.queuedBytes = 0;
      return;
    }
    this.queue.push({ seq: event.seq, text });
    this.queuedBytes += text.length;
  }

  private write(text: string): void {
    if (this.closed) return;
    const ok = this.res.write(text);
    if (!ok && !this.waitingDrain) {
      this.waitingDrain = true;
      this.res.once('drain', () => this.drain());
    }
  }

  private drain(): void {
    this.waitingDrain = false;
    if (this.gap) {
      const { from, to } = this.gap;
      this.gap = null;
      this.write(formatGap(from, to));
    }
    while (!this.waitingDrain && this.queue.length > 0) {
      const next = this.queue.shift()!;
      this.queuedBytes -= next.text.length;
      this.write(next.text);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.unsubscribe();
    this.queue = [];
    if (!this.res.writableEnded) this.res.end();
    this.onClose();
  }
}

export function registerEventsRoute(app: FastifyInstance, bus: SeedwireEventBus, log: Logger, options: SseOptions = {}): SseViewers {
  const resolved: Required<SseOptions> = {
    heartbeatMs: options.heartbeatMs ?? 15_000,
    maxQueuedEvents: options.maxQueuedEvents ?? 1000,
    maxQueuedBytes: options.maxQueuedBytes ?? 1024 * 1024,
  };
  const viewers = new Set<Viewer>();
  const drops: DropCounts = { gaps: 0, events: 0 };
  app.get('/api/events', (request, reply) => {
    const query = request.query as Record<string, unknown>;
    const cursor = parseCursor(request.headers['last-event-id']) ?? parseCursor(query['since']);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const viewer = new Viewer(res, bus, resolved, () => viewers.delete(viewer), drops);
    viewers.add(viewer);
    log.debug({ cursor, viewers: viewers.size }, 'event viewer connected');
    viewer.start(cursor, (fn) => bus.subscribe(fn));
  });
  return {
    count: () => viewers.size,
    drops: () => ({ ...drops }),
    closeAll() {
      for (const viewer of [...viewers]) viewer.close();
    },
  };
}
