/**
 * One viewer of the event bus, whatever carries it (SSE response, console WebSocket): replays from
 * a cursor, then follows the bus through a bounded queue. While the transport is not draining,
 * events queue up to a count and byte limit; past that the queue is dropped and the viewer gets
 * one `gap` {from, to} in place of what it lost once the transport drains again.
 */
import type { SeedwireEventBus } from './bus.js';
import type { BusEvent } from './types.js';

/** The transport under a viewer. */
export interface ViewerSink {
  /** Writes one frame; false when the transport's buffer is full (then `onceDrain`). */
  write(frame: string): boolean;
  onceDrain(listener: () => void): void;
  /** Ends the transport (idempotent). */
  end(): void;
}

/** How a transport spells events and gaps. */
export interface ViewerFormat {
  event(event: BusEvent, dataJson: string): string;
  gap(from: number, to: number): string;
  /** A keep-alive frame, or null when the transport has its own. */
  heartbeat(): string | null;
}

export interface ViewerLimits {
  /** @default 15_000 ms between heartbeats */
  heartbeatMs: number;
  /** @default 1000 events queued per viewer */
  maxQueuedEvents: number;
  /** @default 1 MiB queued per viewer */
  maxQueuedBytes: number;
}

export const DEFAULT_VIEWER_LIMITS: Readonly<ViewerLimits> = { heartbeatMs: 15_000, maxQueuedEvents: 1000, maxQueuedBytes: 1024 * 1024 };

/** Slow viewers' losses since start (for /metrics): times a viewer fell behind, and the events it missed. */
export interface ViewerStats {
  gaps: number;
  droppedEvents: number;
}

export class EventViewer {
  private queue: Array<{ seq: number; text: string }> = [];
  private queuedBytes = 0;
  private gap: { from: number; to: number } | null = null;
  private waitingDrain = false;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private unsubscribe: () => void = () => {};

  constructor(
    private readonly sink: ViewerSink,
    private readonly format: ViewerFormat,
    private readonly bus: SeedwireEventBus,
    private readonly limits: ViewerLimits,
    private readonly stats: ViewerStats,
    private readonly onClose: () => void,
  ) {
    this.heartbeat = setInterval(() => {
      const beat = this.format.heartbeat();
      if (beat !== null && !this.waitingDrain) this.write(beat);
    }, limits.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Replays what followed `cursor` (a gap first when part of it fell out of the ring), then follows the bus. */
  start(cursor: number | null): void {
    if (cursor !== null) {
      let missed = this.bus.since(cursor);
      if (missed === null) {
        const first = this.bus.firstSeq;
        this.write(this.format.gap(cursor + 1, first - 1));
        missed = this.bus.since(first - 1) ?? [];
      }
      for (const event of missed) this.push(event);
    }
    this.unsubscribe = this.bus.subscribe((event) => this.push(event));
    if (this.closed) this.unsubscribe();
  }

  /** Writes a transport-specific frame outside the event sequence (a greeting). */
  writeFrame(frame: string): void {
    this.write(frame);
  }

  push(event: BusEvent): void {
    if (this.closed) return;
    if (this.gap) {
      this.gap.to = event.seq;
      this.stats.droppedEvents++;
      return;
    }
    const text = this.format.event(event, this.bus.serialized(event));
    if (!this.waitingDrain) {
      this.write(text);
      return;
    }
    if (this.queue.length + 1 > this.limits.maxQueuedEvents || this.queuedBytes + text.length > this.limits.maxQueuedBytes) {
      this.gap = { from: this.queue[0]?.seq ?? event.seq, to: event.seq };
      this.stats.gaps++;
      this.stats.droppedEvents += this.queue.length + 1;
      this.queue = [];
      this.queuedBytes = 0;
      return;
    }
    this.queue.push({ seq: event.seq, text });
    this.queuedBytes += text.length;
  }

  private write(text: string): void {
    if (this.closed) return;
    const ok = this.sink.write(text);
    if (!ok && !this.waitingDrain) {
      this.waitingDrain = true;
      this.sink.onceDrain(() => this.drain());
    }
  }

  private drain(): void {
    this.waitingDrain = false;
    if (this.gap) {
      const { from, to } = this.gap;
      this.gap = null;
      this.write(this.format.gap(from, to));
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
    this.sink.end();
    this.onClose();
  }
}
