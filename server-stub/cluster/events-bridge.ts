/**
 * The fleet's events on every controller. Each controller publishes its own event-bus events to
 * `seedwire.events` and feeds the fleet bus, which its viewers (SSE, the console's socket) follow,
 * with its own events as they happen and the others' as they arrive (its own echo is dropped).
 * The local bus stays this controller's alone: metrics and output followers read it.
 *
 * The events of one turn of a controller's event loop cross the bus as one message. Ordering:
 * each controller's events keep their order (NATS keeps one publisher's order on a
 * subject); events of different controllers interleave in arrival order, and the fleet bus numbers
 * them in that order, so a viewer's cursor is the fleet bus's own sequence.
 */
import type { Msg, Subscription } from 'nats';
import type { Logger } from 'pino';
import type { SeedwireEventBus } from '../events/bus.js';
import type { BusEvent } from '../events/types.js';
import type { BusLink } from './link.js';
import { ClusterEventsMessage, decodeMessage } from './messages.js';
import { SUBJECTS } from './subjects.js';

export interface EventsBridgeDeps {
  link: BusLink;
  controllerId: string;
  local: SeedwireEventBus;
  fleet: SeedwireEventBus;
  log: Logger;
  /** Events larger than this stay local (NATS refuses messages over its max_payload); batches stay under it. */
  maxMessageBytes: number;
}

export interface EventsBridge {
  /** Events not sent to the cluster since start (bus down, or too large). */
  readonly unsent: number;
  /** Sends what is queued now (also done once per turn of the event loop). */
  flush(): void;
  close(): void;
}

export function createEventsBridge(deps: EventsBridgeDeps): EventsBridge {
  const { link, controllerId, local, fleet, log } = deps;
  let sub: Subscription | null = null;
  let unsent = 0;
  let loggedUnsent = false;
  // The events of one turn of the event loop go out together, after it: one message instead of
  // one per event (an operation publishes two to four at a time), and after whatever that turn
  // sent first, such as the reply a routed operation's requester waits for.
  const head = `{"origin":${JSON.stringify(controllerId)},"events":[`;
  const headBytes = Buffer.byteLength(head) + 2;
  let queued: string[] = [];
  let queuedBytes = headBytes;
  let flushing: NodeJS.Immediate | null = null;

  function publishQueued(): void {
    if (queued.length === 0) return;
    const payload = Buffer.from(`${head}${queued.join(',')}]}`, 'utf8');
    const count = queued.length;
    queued = [];
    queuedBytes = headBytes;
    const nc = link.connection();
    if (nc === null || !link.connected()) {
      unsent += count;
      return;
    }
    try {
      nc.publish(SUBJECTS.events, payload);
    } catch (error) {
      unsent += count;
      log.debug({ err: error }, 'events not shared');
    }
  }

  function flush(): void {
    if (flushing !== null) clearImmediate(flushing);
    flushing = null;
    publishQueued();
  }

  function share(event: BusEvent): void {
    if (event.type === 'gap') return;
    const json = local.serialized(event);
    fleet.publish(event.type, event.data, json);
    if (!link.connected()) {
      unsent++;
      return;
    }
    const item = `{"type":"${event.type}","at":${JSON.stringify(event.at)},"data":${json}}`;
    const bytes = Buffer.byteLength(item) + 1;
    if (headBytes + bytes > deps.maxMessageBytes) {
      unsent++;
      if (!loggedUnsent) log.warn({ type: event.type, bytes }, 'an event too large for the cluster bus stays local (logged once)');
      loggedUnsent = true;
      return;
    }
    if (queuedBytes + bytes > deps.maxMessageBytes) publishQueued();
    queued.push(item);
    queuedBytes += bytes;
    flushing ??= setImmediate(flush);
  }

  function receive(msg: Msg): void {
    let message: ClusterEventsMessage;
    try {
      message = decodeMessage(ClusterEventsMessage, msg.data, 'cluster events');
    } catch (error) {
      log.warn({ err: error }, 'bad cluster events dropped');
      return;
    }
    if (message.origin === controllerId) return;
    if ('events' in message) for (const event of message.events) fleet.publish(event.type, event.data);
    else fleet.publish(message.type, message.data);
  }

  const unsubscribe = local.subscribe(share);
  link.onConnected(() => {
    const nc = link.connection();
    if (nc === null || sub !== null) return;
    sub = nc.subscribe(SUBJECTS.events, { callback: (error, msg) => (error ? undefined : receive(msg)) });
  });

  return {
    get unsent() {
      return unsent;
    },
    flush,
    close() {
      unsubscribe();
      flush();
      sub?.unsubscribe();
      sub = null;
    },
  };
}
