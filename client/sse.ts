/**
 * A Server-Sent Events parser driven by text chunks, as /api/events sends them: `id:`, `event:`,
 * `data:` lines, a blank line ends an event, `:` lines are comments (heartbeats), `retry:` is
 * ignored. Pure, so it is tested on literal text.
 */

export interface SseMessage {
  /** The `id:` field, or the last one seen (as the EventSource spec keeps it). */
  id: string | null;
  event: string;
  data: string;
}

/** Upper bound on one event's text, so a peer that never sends a blank line cannot grow memory. */
const MAX_EVENT_CHARS = 4 * 1024 * 1024;

export class SseParser {
  private buffer = '';
  private lastId: string | null = null;
  private event = '';
  private data: string[] = [];
  private size = 0;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone trailing \r may be the first half of \r\n: wait for the next chunk.
      if (!match || (match[0] === '\r' && match.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.readLine(line);
      if (message) out.push(message);
    }
    if (this.buffer.length + this.size > MAX_EVENT_CHARS) throw new Error(`an event is larger than ${MAX_EVENT_CHARS} characters`);
    return out;
  }

  private readLine(line: string): SseMessage | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.size += value.length;
    } else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    return null;
  }

  private dispatch(): SseMessage | null {
    const data = this.data;
    const event = this.event;
    this.data = [];
    this.event = '';
    this.size = 0;
    if (data.length === 0) return null;
    return { id: this.lastId, event: event || 'message', data: data.join('\n') };
  }
}
