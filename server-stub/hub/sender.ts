/**
 * Writes to one agent socket. Control frames (JSON) go straight to the socket; bulk data frames go
 * through a queue that only feeds the socket while its bufferedAmount is below the high watermark,
 * so control frames never sit behind more than about one watermark of bulk data.
 */
import type { WebSocket } from 'ws';
import { encodeFrame } from '../../shared/codec.js';
import type { Frame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { HubCounters } from './counters.js';

export interface QueuedData {
  stream: number;
  buf: Buffer;
  /** Called once the frame was handed to the socket (or dropped on close). */
  done: () => void;
}

export class Sender {
  private readonly queue: QueuedData[] = [];
  private queuedBytes = 0;
  private closed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly counters: HubCounters,
    private readonly highWater: number = LIMITS.sendHighWaterBytes,
  ) {}

  get bufferedBytes(): number {
    return this.queuedBytes + this.ws.bufferedAmount;
  }

  sendFrame(frame: Frame): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return false;
    this.counters.framesOut++;
    this.ws.send(encodeFrame(frame), () => {
      if (this.queue.length > 0) this.pump();
    });
    return true;
  }

  sendData(item: QueuedData): void {
    if (this.closed) {
      item.done();
      return;
    }
    this.queue.push(item);
    this.queuedBytes += item.buf.length;
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.queue.length > 0 && this.ws.readyState === this.ws.OPEN && this.ws.bufferedAmount < this.highWater) {
      const item = this.queue.shift()!;
      this.queuedBytes -= item.buf.length;
      this.counters.framesOut++;
      // The send callback fires once the bytes reached the kernel: the moment to feed more.
      this.ws.send(item.buf, { binary: true }, () => this.pump());
      item.done();
    }
  }

  /** Drops queued data (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const item of this.queue.splice(0)) item.done();
    this.queuedBytes = 0;
  }
}
