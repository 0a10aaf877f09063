/**
 * The in-process EventBus: a ring of recent events (bounded by count and by serialized bytes) for
 * resuming viewers, plus synchronous fan-out to subscribers.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { BusEvent, EventBus, EventType } from './types.js';

export interface RingOptions {
  /** @default 5000 events */
  maxEvents?: number;
  /** @default 8 MiB of serialized events */
  maxBytes?: number;
}

export interface SeedwireEventBus extends EventBus {
  /**
   * Names this bus instance: sequence numbers restart with every controller process, so a viewer
   * that resumes must know whether its cursor belongs to this bus.
   */
  readonly epoch: string;
  /** Oldest seq still held (lastSeq + 1 when the ring is empty). */
  readonly firstSeq: number;
  /** The serialized `data` of an event (computed once at publish). */
  serialized(event: BusEvent): string;
  /** How many listeners follow the bus now (viewers, output followers). */
  readonly subscriberCount: number;
  /** Calls `listener` with the new count each time a listener comes or goes. */
  watchSubscribers(listener: (count: number) => void): () => void;
  /**
   * Drops every held event and counts one sequence number for what the bus did not hold: a cursor
   * from before resumes with a `gap` up to it, never silently past events it never saw.
   */
  forget(): void;
  /**
   * Resolves once the bus carries everything a new viewer should see (cluster mode: once this
   * controller follows the other controllers' events); at once unless something set it.
   */
  prepare(): Promise<void>;
  setPrepare(prepare: () => Promise<void>): void;
  dispose(): void;
}

/**
 * A held event keeps its serialized data, not the object it was published with: a resuming viewer
 * needs only the text, and the object (an operation's row, an agent's facts) would otherwise
 * outlive its publisher in the old generation until the next full collection, thousands of
 * events later (a controller's peak RSS). Replayed events are parsed back from it.
 */
interface Held {
  seq: number;
  type: Exclude<EventType, 'gap'>;
  at: string;
  json: string;
}

export function createEventBus(options: RingOptions & { log?: Logger } = {}): SeedwireEventBus {
  const maxEvents = options.maxEvents ?? 5000;
  const maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
  const ring: Held[] = [];
  let head = 0; // index of the oldest held event in `ring`
  let heldBytes = 0;
  let lastSeq = 0;
  const listeners = new Set<(event: BusEvent) => void>();
  const watchers = new Set<(count: number) => void>();
  let prepare: () => Promise<void> = () => Promise.resolve();
  const notifyWatchers = (): void => {
    for (const watcher of [...watchers]) watcher(listeners.size);
  };
  const jsonOf = new WeakMap<BusEvent, string>();
  const epoch = randomBytes(8).toString('hex');

  function dropOldest(): void {
    const oldest = ring[head];
    if (!oldest) return;
    heldBytes -= oldest.json.length;
    ring[head] = undefined as unknown as Held;
    head++;
    // compact now and then so the array does not grow forever
    if (head > 1024 && head * 2 > ring.length) {
      ring.splice(0, head);
      head = 0;
    }
  }

  function heldCount(): number {
    return ring.length - head;
  }

  return {
    epoch,
    get lastSeq() {
      return lastSeq;
    },
    get firstSeq() {
      return ring[head]?.seq ?? lastSeq + 1;
    },
    publish(type: Exclude<EventType, 'gap'>, data: unknown, serialized?: string): BusEvent {
      const event: BusEvent = { seq: ++lastSeq, type, at: new Date().toISOString(), data };
      const json = serialized ?? JSON.stringify(data) ?? 'null';
      jsonOf.set(event, json);
      ring.push({ seq: event.seq, type, at: event.at, json });
      heldBytes += json.length;
      while (heldCount() > maxEvents || (heldBytes > maxBytes && heldCount() > 1)) dropOldest();
      for (const listener of [...listeners]) {
        try {
          listener(event);
        } catch (error) {
          options.log?.error({ err: error, type }, 'event listener threw');
        }
      }
      return event;
    },
    since(seq: number): BusEvent[] | null {
      const first = ring[head]?.seq ?? lastSeq + 1;
      if (seq >= lastSeq) return [];
      if (seq + 1 < first) return null;
      const out: BusEvent[] = [];
      for (let i = head + (seq + 1 - first); i < ring.length; i++) {
        const held = ring[i]!;
        const event: BusEvent = { seq: held.seq, type: held.type, at: held.at, data: JSON.parse(held.json) as unknown };
        jsonOf.set(event, held.json);
        out.push(event);
      }
      return out;
    },
    subscribe(listener) {
      listeners.add(listener);
      notifyWatchers();
      return () => {
        if (listeners.delete(listener)) notifyWatchers();
      };
    },
    get subscriberCount() {
      return listeners.size;
    },
    watchSubscribers(watcher) {
      watchers.add(watcher);
      return () => {
        watchers.delete(watcher);
      };
    },
    forget() {
      ring.length = 0;
      head = 0;
      heldBytes = 0;
      lastSeq++;
    },
    prepare: () => prepare(),
    setPrepare(fn) {
      prepare = fn;
    },
    serialized(event) {
      return jsonOf.get(event) ?? JSON.stringify(event.data) ?? 'null';
    },
    dispose() {
      listeners.clear();
      watchers.clear();
    },
  };
}
