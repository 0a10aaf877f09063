/**
 * Live output of one call: ordered `output` frames (seq counts sent frames from 0), chunks of at
 * most `frameBytes` UTF-8 bytes. While the link is down, output is buffered; older output is
 * dropped and reported as `gap` bytes on the next frame that goes out.
 *
 * When the controller acknowledges stored output (its welcome says `acksOutput`), a sent frame is
 * also kept until an `ack` covers its seq: a frame written into the socket of a controller that
 * died before storing it is sent again, under the same seq, after the next welcome (`replay`), and
 * the controller drops what it already stored by seq. Sent and unsent output together stay within
 * `maxBuffered` bytes: past it the oldest sent frame is forgotten first (the controller most
 * likely stored it; if not, it sees a hole in the seqs and marks it), then the oldest unsent one.
 */
import type { Frame, OutputFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';

export type SendFrame = (frame: Frame) => boolean;
type Stream = OutputFrame['stream'];

interface Chunk {
  stream: Stream;
  data: string;
  bytes: number;
}

/** Splits text into pieces of at most `maxBytes` UTF-8 bytes, never inside a character. */
export function splitUtf8(text: string, maxBytes: number): Array<{ data: string; bytes: number }> {
  const total = Buffer.byteLength(text);
  if (total <= maxBytes) return [{ data: text, bytes: total }];
  const buf = Buffer.from(text, 'utf8');
  const pieces: Array<{ data: string; bytes: number }> = [];
  let start = 0;
  while (start < buf.length) {
    let end = Math.min(start + maxBytes, buf.length);
    while (end < buf.length && end > start && ((buf[end] ?? 0) & 0xc0) === 0x80) end -= 1;
    pieces.push({ data: buf.toString('utf8', start, end), bytes: end - start });
    start = end;
  }
  return pieces;
}

interface SentFrame {
  frame: OutputFrame;
  bytes: number;
}

export class OutputChannel {
  private seq = 0;
  private gap = 0;
  private queue: Chunk[] = [];
  private queuedBytes = 0;
  /** Sent frames the controller has not acknowledged, in seq order (kept only while it acknowledges output). */
  private unacked: SentFrame[] = [];
  private unackedBytes = 0;

  /** `acksOutput`: whether the controller of the current session acknowledges output (its welcome). */
  constructor(
    private readonly id: string,
    private readonly maxBuffered: number = LIMITS.outputBufferBytes,
    private readonly frameBytes: number = LIMITS.outputFrameBytes,
    private readonly acksOutput: () => boolean = () => false,
  ) {}

  write(stream: Stream, text: string, send: SendFrame): void {
    if (text.length === 0) return;
    for (const piece of splitUtf8(text, this.frameBytes)) {
      const chunk = { stream, ...piece };
      if (this.queue.length === 0 && this.sendChunk(chunk, send)) continue;
      this.enqueue(chunk);
    }
  }

  /** Sends what was buffered, in order; false if the link failed again on the way. */
  flush(send: SendFrame): boolean {
    while (this.queue.length > 0) {
      const chunk = this.queue[0];
      if (!chunk || !this.sendChunk(chunk, send)) return false;
      this.queue.shift();
      this.queuedBytes -= chunk.bytes;
    }
    return true;
  }

  /**
   * After a welcome: sends again every frame the controller has not acknowledged (same seq), then
   * what was buffered; a controller that does not acknowledge output gets only the buffer. False
   * if the link failed again on the way.
   */
  replay(send: SendFrame): boolean {
    if (!this.acksOutput()) this.forgetSent();
    for (const sent of this.unacked) if (!send(sent.frame)) return false;
    return this.flush(send);
  }

  /** The controller stored every frame up to and including `seq`. */
  ack(seq: number): void {
    let dropped = 0;
    while (dropped < this.unacked.length && this.unacked[dropped]!.frame.seq <= seq) {
      this.unackedBytes -= this.unacked[dropped]!.bytes;
      dropped += 1;
    }
    if (dropped > 0) this.unacked.splice(0, dropped);
  }

  /** Bytes not yet sent (buffered while the link is down). */
  get buffered(): number {
    return this.queuedBytes;
  }

  /** Bytes sent and not yet acknowledged. */
  get unacknowledged(): number {
    return this.unackedBytes;
  }

  /** Nothing left to send or to send again. */
  get settled(): boolean {
    return this.queue.length === 0 && this.unacked.length === 0;
  }

  private sendChunk(chunk: Chunk, send: SendFrame): boolean {
    const frame: OutputFrame = { t: 'output', id: this.id, seq: this.seq, stream: chunk.stream, data: chunk.data };
    if (this.gap > 0) frame.gap = this.gap;
    if (!send(frame)) return false;
    this.seq += 1;
    this.gap = 0;
    if (this.acksOutput()) {
      this.unacked.push({ frame, bytes: chunk.bytes });
      this.unackedBytes += chunk.bytes;
      this.trim();
    }
    return true;
  }

  private enqueue(chunk: Chunk): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.bytes;
    this.trim();
  }

  /** Keeps sent and unsent output within maxBuffered: the oldest sent frames go first. */
  private trim(): void {
    while (this.queuedBytes + this.unackedBytes > this.maxBuffered && this.unacked.length > 0) {
      const forgotten = this.unacked.shift();
      if (forgotten) this.unackedBytes -= forgotten.bytes;
    }
    while (this.queuedBytes > this.maxBuffered && this.queue.length > 1) {
      const dropped = this.queue.shift();
      if (!dropped) break;
      this.queuedBytes -= dropped.bytes;
      this.gap += dropped.bytes;
    }
  }

  private forgetSent(): void {
    this.unacked = [];
    this.unackedBytes = 0;
  }
}
