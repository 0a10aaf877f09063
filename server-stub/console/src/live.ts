/**
 * Follows GET /api/events (Server-Sent Events). The browser's EventSource reconnects by itself
 * after a dropped connection (sending Last-Event-ID); when the controller answers with an HTTP
 * error instead (401, 503 while starting) EventSource gives up, so we probe the API (a 401 there
 * sends the user to login) and open a new one with backoff.
 *
 * Whenever events may have been missed — a `gap` event, or any (re)open — `onResync` asks the
 * current view to re-fetch its data.
 */
import { ApiError, request } from './api.js';
import { EVENT_TYPES, type LiveEvent } from './types.js';

export type LiveStatus = 'connecting' | 'open' | 'reconnecting' | 'stopped';

export interface LiveHandlers {
  onEvent(event: LiveEvent): void;
  /** `gap`: the controller dropped events this viewer could not take in time (`missed` = their seq range). */
  onResync(reason: 'open' | 'gap', missed?: { from: number; to: number }): void;
  onStatus(status: LiveStatus): void;
}

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 10_000;

export class LiveConnection {
  private source: EventSource | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retryMs = RETRY_MIN_MS;
  private status: LiveStatus = 'stopped';
  private everOpened = false;

  constructor(
    private readonly url: string,
    private readonly handlers: LiveHandlers,
  ) {}

  get running(): boolean {
    return this.status !== 'stopped';
  }

  start(): void {
    if (this.running) return;
    this.everOpened = false;
    this.open();
  }

  stop(): void {
    this.clearRetry();
    this.source?.close();
    this.source = null;
    this.setStatus('stopped');
  }

  private open(): void {
    this.setStatus(this.everOpened ? 'reconnecting' : 'connecting');
    const source = new EventSource(this.url, { withCredentials: true });
    this.source = source;
    source.addEventListener('open', () => {
      if (this.source !== source) return;
      this.everOpened = true;
      this.retryMs = RETRY_MIN_MS;
      this.setStatus('open');
      this.handlers.onResync('open');
    });
    source.addEventListener('error', () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The controller refused the stream (HTTP error): find out why, then retry ourselves.
        source.close();
        this.source = null;
        this.setStatus('reconnecting');
        this.scheduleRetry();
      } else if (this.everOpened) {
        this.setStatus('reconnecting'); // EventSource retries on its own.
      }
    });
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => {
        if (this.source !== source) return;
        const event = parseEvent(type, message as MessageEvent<string>);
        if (!event) return;
        if (event.type === 'gap') this.handlers.onResync('gap', gapRange(event.data));
        else this.handlers.onEvent(event);
      });
    }
  }

  private scheduleRetry(): void {
    this.clearRetry();
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.probeThenOpen();
    }, delay);
  }

  private async probeThenOpen(): Promise<void> {
    try {
      await request('GET', '/api/audit?limit=1');
    } catch (err) {
      if (!this.running) return; // a 401 stopped us and went to login
      if (err instanceof ApiError && err.status === 401) return;
      this.scheduleRetry();
      return;
    }
    if (this.running && !this.source) this.open();
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private setStatus(status: LiveStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.handlers.onStatus(status);
  }
}

function gapRange(data: unknown): { from: number; to: number } | undefined {
  const d = data as { from?: unknown; to?: unknown } | null;
  return d !== null && typeof d === 'object' && typeof d.from === 'number' && typeof d.to === 'number' ? { from: d.from, to: d.to } : undefined;
}

/** The controller sends the bus event `{seq, type, at, data}` as the SSE data; a bare payload is accepted too. */
export function parseEvent(type: LiveEvent['type'], message: Pick<MessageEvent<string>, 'data' | 'lastEventId'>): LiveEvent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message.data);
  } catch {
    return null; // a malformed event must not break the stream
  }
  const envelope = parsed as { seq?: unknown; type?: unknown; data?: unknown } | null;
  const wrapped = envelope !== null && typeof envelope === 'object' && envelope.type === type && 'data' in envelope && typeof envelope.seq === 'number';
  return { type, seq: Number(message.lastEventId), data: wrapped ? envelope.data : parsed };
}
