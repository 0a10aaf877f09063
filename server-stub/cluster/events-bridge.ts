/**
 * The fleet's events on every controller. Each controller publishes its own event-bus events to
 * `seedwire.events` and feeds the fleet bus, which its viewers (SSE, the console's socket) follow,
 * with its own events as they happen and the others' as they arrive (its own echo is dropped).
 * The local bus stays this controller's alone: metrics and output followers read it.
 *
 * A controller follows the others' events only while someone here follows the fleet bus (an SSE
 * or console viewer, an output follower) and for `lingerMs` after the last one left: a controller
 * nobody watches spends nothing on the fleet's events (each is otherwise decoded by every other
 * controller). When it starts following, the fleet bus forgets what it held (only this
 * controller's events since it stopped): its ring holds the whole fleet's events from then on, and
 * a viewer resuming from before gets a `gap`. Its own events always go out to the others.
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
  /** How long the others' events are still followed after the fleet bus's last listener left. */
  lingerMs: number;
  /** How long a new viewer waits for the bus server to confirm the subscription before it starts anyway. */
  prepareTimeoutMs: number;
}

export interface EventsBridge {
  /** Events not sent to the cluster since start (bus down, or too large). */
  readonly unsent: number;
  /** Whether this controller follows the other controllers' events now. */
  readonly following: boolean;
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

  // Other controllers' events are taken in after the turn that read them: a routed operation's
  // reply often arrives in the same read as its holder's events, and its requester answers first.
  let received: Msg[] = [];
  let draining: NodeJS.Immediate | null = null;
  const drain = (): void => {
    draining = null;
    const batch = received;
    received = [];
    for (const msg of batch) receive(msg);
  };

  // Following: wanted while the fleet bus has listeners or a viewer is being prepared, and for
  // lingerMs after; the subscription exists while wanted and the bus link is up (the client
  // restores it after a reconnect).
  let preparing = 0;
  let wanted = false;
  let linger: NodeJS.Timeout | null = null;
  function follow(): void {
    if (linger !== null) clearTimeout(linger);
    linger = null;
    if (!wanted) {
      wanted = true;
      fleet.forget();
      log.debug('following the other controllers\' events');
    }
    const nc = link.connection();
    if (nc === null || sub !== null) return;
    sub = nc.subscribe(SUBJECTS.events, {
      callback: (error, msg) => {
        if (error) return;
        received.push(msg);
        draining ??= setImmediate(drain);
      },
    });
  }
  const watched = (): boolean => fleet.subscriberCount > 0 || preparing > 0;
  function stopFollowing(): void {
    linger = null;
    if (watched()) return;
    wanted = false;
    sub?.unsubscribe();
    sub = null;
    log.debug('no longer following the other controllers\' events: nobody here watches them');
  }
  function reconsider(): void {
    if (watched()) follow();
    else if (wanted && linger === null) {
      linger = setTimeout(stopFollowing, deps.lingerMs);
      linger.unref();
    }
  }
  const unwatch = fleet.watchSubscribers(reconsider);
  fleet.setPrepare(async () => {
    preparing++;
    follow();
    try {
      const nc = link.connection();
      if (nc === null || !link.connected()) return; // bus down: this controller's own events only, as before
      // The server has the subscription once it answers a ping sent after it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([nc.flush().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, deps.prepareTimeoutMs)))]);
      clearTimeout(timer);
    } finally {
      preparing--;
      reconsider();
    }
  });

  const unsubscribe = local.subscribe(share);
  link.onConnected(() => {
    if (wanted) follow();
  });

  return {
    get unsent() {
      return unsent;
    },
    get following() {
      return sub !== null;
    },
    flush,
    close() {
      unsubscribe();
      unwatch();
      if (linger !== null) clearTimeout(linger);
      linger = null;
      wanted = false;
      flush();
      sub?.unsubscribe();
      sub = null;
      if (draining !== null) clearImmediate(draining);
      drain();
    },
  };
}
