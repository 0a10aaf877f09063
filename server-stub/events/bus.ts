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
  dispose(): void;
}

interface Held {
  event: BusEvent;
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
      return ring[head]?.event.seq ?? lastSeq + 1;
    },
    publish(type: Exclude<EventType, 'gap'>, data: unknown, serialized?: string): BusEvent {
      const event: BusEvent = { seq: ++lastSeq, type, at: new Date().toISOString(), data };
      const json = serialized ?? JSON.stringify(data) ?? 'null';
      jsonOf.set(event, json);
      ring.push({ event, json });
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
      const first = ring[head]?.event.seq ?? lastSeq + 1;
      if (seq >= lastSeq) return [];
      if (seq + 1 < first) return null;
      const out: BusEvent[] = [];
      for (let i = head + (seq + 1 - first); i < ring.length; i++) out.push(ring[i]!.event);
      return out;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    serialized(event) {
      return jsonOf.get(event) ?? JSON.stringify(event.data) ?? 'null';
    },
    dispose() {
      listeners.clear();
    },
  };
}
