/**
 * How many controllers share the fleet now, for admission pacing (server-stub/hub/admission.ts):
 * on a shared store every controller knows every agent, and pacing each controller by the whole
 * fleet would let N controllers admit N times the intended share. Each controller announces itself
 * on `seedwire.members` every `announceMs` and counts the others heard within `expireMs`; one it
 * has not heard from that long (dead, or cut off from the bus) no longer counts. Three small
 * messages per interval for three controllers: nothing to store, nothing to clean up.
 */
import type { Subscription } from 'nats';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { BusLink } from './link.js';
import { decodeMessage, encodeMessage } from './messages.js';
import { SUBJECT_ROOT } from './subjects.js';

export const MEMBERS_SUBJECT = `${SUBJECT_ROOT}.members`;

const Announce = z.object({ origin: z.string().min(1).max(256), url: z.string().max(2048) });
type Announce = z.infer<typeof Announce>;

export interface ClusterMembers {
  /** This controller and the others heard within `expireMs` (at least 1). */
  count(): number;
  close(): void;
}

export interface MembersDeps {
  link: BusLink;
  controllerId: string;
  advertiseUrl: string;
  log: Logger;
  announceMs: number;
  expireMs: number;
  now?: () => number;
}

export function createMembers(deps: MembersDeps): ClusterMembers {
  const now = deps.now ?? Date.now;
  const heard = new Map<string, number>();
  let sub: Subscription | null = null;
  let closed = false;

  function announce(): void {
    const nc = deps.link.connection();
    if (nc === null || nc.isClosed()) return;
    try {
      nc.publish(MEMBERS_SUBJECT, encodeMessage({ origin: deps.controllerId, url: deps.advertiseUrl } satisfies Announce));
    } catch (error) {
      deps.log.debug({ err: error }, 'member announcement not published');
    }
  }

  function subscribe(): void {
    const nc = deps.link.connection();
    if (closed || nc === null || nc.isClosed()) return;
    sub?.unsubscribe();
    sub = nc.subscribe(MEMBERS_SUBJECT, {
      callback: (error, msg) => {
        if (error) return;
        try {
          const message = decodeMessage(Announce, msg.data, 'member announcement');
          if (message.origin !== deps.controllerId) heard.set(message.origin, now());
        } catch (failure) {
          deps.log.warn({ err: failure }, 'bad member announcement dropped');
        }
      },
    });
    announce();
  }

  deps.link.onConnected(subscribe);
  subscribe();
  const timer = setInterval(announce, deps.announceMs);
  timer.unref();

  return {
    count() {
      const cutoff = now() - deps.expireMs;
      for (const [origin, at] of heard) if (at < cutoff) heard.delete(origin);
      return 1 + heard.size;
    },
    close() {
      closed = true;
      clearInterval(timer);
      sub?.unsubscribe();
      sub = null;
    },
  };
}
