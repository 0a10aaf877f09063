/**
 * The fleet's events on every controller. Each controller publishes its own event-bus events to
 * `seedwire.events` and feeds the fleet bus, which its viewers (SSE, the console's socket) follow,
 * with its own events as they happen and the others' as they arrive (its own echo is dropped).
 * The local bus stays this controller's alone: metrics and output followers read it.
 *
 * Ordering: each controller's events keep their order (NATS keeps one publisher's order on a
 * subject); events of different controllers interleave in arrival order, and the fleet bus numbers
 * them in that order, so a viewer's cursor is the fleet bus's own sequence.
 */
import type { Msg, Subscription } from 'nats';
import type { Logger } from 'pino';
import type { SeedwireEventBus } from '../events/bus.js';
import type { BusEvent } from '../events/types.js';
import type { BusLink } from './link.js';
import { ClusterEvent, decodeMessage, encodeMessage } from './messages.js';
import { SUBJECTS } from './subjects.js';

export interface EventsBridgeDeps {
  link: BusLink;
  controllerId: string;
  local: SeedwireEventBus;
  fleet: SeedwireEventBus;
  log: Logger;
  /** Events larger than this stay local (NATS refuses messages over its max_payload). */
  maxMessageBytes: number;
}

export interface EventsBridge {
  /** Events not sent to the cluster since start (bus down, or too large). */
  readonly unsent: number;
  close(): void;
}

export function createEventsBridge(deps: EventsBridgeDeps): EventsBridge {
  const { link, controllerId, local, fleet, log } = deps;
  let sub: Subscription | null = null;
  let unsent = 0;
  let loggedUnsent = false;

  function share(event: BusEvent): void {
    if (event.type === 'gap') return;
    fleet.publish(event.type, event.data);
    const nc = link.connection();
    if (nc === null || !link.connected()) {
      unsent++;
      return;
    }
    const payload = encodeMessage({ origin: controllerId, type: event.type, at: event.at, data: event.data } satisfies ClusterEvent);
    if (payload.byteLength > deps.maxMessageBytes) {
      unsent++;
      if (!loggedUnsent) log.warn({ type: event.type, bytes: payload.byteLength }, 'an event too large for the cluster bus stays local (logged once)');
      loggedUnsent = true;
      return;
    }
    try {
      nc.publish(SUBJECTS.events, payload);
    } catch (error) {
      unsent++;
      log.debug({ err: error }, 'event not shared');
    }
  }

  function receive(msg: Msg): void {
    let event: ClusterEvent;
    try {
      event = decodeMessage(ClusterEvent, msg.data, 'cluster event');
    } catch (error) {
      log.warn({ err: error }, 'bad cluster event dropped');
      return;
    }
    if (event.origin === controllerId) return;
    fleet.publish(event.type, event.data);
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
    close() {
      unsubscribe();
      sub?.unsubscribe();
      sub = null;
    },
  };
}
