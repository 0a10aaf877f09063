/**
 * Live output of one call: ordered `output` frames (seq counts sent frames from 0), chunks of at
 * most `frameBytes` UTF-8 bytes. While the link is down, output is buffered up to `maxBuffered`
 * bytes; older output is dropped and reported as `gap` bytes on the next frame that goes out.
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

export class OutputChannel {
  private seq = 0;
  private gap = 0;
  private queue: Chunk[] = [];
  private queuedBytes = 0;

  constructor(
    private readonly id: string,
    private readonly maxBuffered: number = LIMITS.outputBufferBytes,
    private readonly frameBytes: number = LIMITS.outputFrameBytes,
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

  get buffered(): number {
    return this.queuedBytes;
  }

  private sendChunk(chunk: Chunk, send: SendFrame): boolean {
    const frame: OutputFrame = { t: 'output', id: this.id, seq: this.seq, stream: chunk.stream, data: chunk.data };
    if (this.gap > 0) frame.gap = this.gap;
    if (!send(frame)) return false;
    this.seq += 1;
    this.gap = 0;
    return true;
  }

  private enqueue(chunk: Chunk): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.bytes;
    while (this.queuedBytes > this.maxBuffered && this.queue.length > 1) {
      const dropped = this.queue.shift();
      if (!dropped) break;
      this.queuedBytes -= dropped.bytes;
      this.gap += dropped.bytes;
    }
  }
}
