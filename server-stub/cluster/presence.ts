/**
 * Which controller holds which agent, for the API's views: `GET /api/agents` on any controller
 * shows an agent another controller holds as connected (the shared store knows every agent, but a
 * session lives in the memory of its one holder). Asked when needed, not kept: the asker publishes
 * `seedwire.presence.query` and every controller answers with the agents it holds now, so a
 * controller that died simply does not answer (nothing to clean up), and an agent that moved is
 * reported by its new holder. One query per listing; answers are collected until the peers that
 * answered last time all did, or none answered for `stallMs`, or `maxWaitMs` passed.
 */
import { createInbox, type Msg, type Subscription } from 'nats';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AgentHub } from '../hub/types.js';
import type { BusLink } from './link.js';
import { decodeMessage, encodeMessage } from './messages.js';
import { SUBJECT_ROOT } from './subjects.js';

export const PRESENCE_SUBJECT = `${SUBJECT_ROOT}.presence.query`;
/** "Agent X was revoked": the controller holding its session ends it (the store already refuses its credential). */
export const REVOKED_SUBJECT = `${SUBJECT_ROOT}.presence.revoked`;

const Revoked = z.object({ origin: z.string().min(1).max(256), agentId: z.string().max(256) });
type Revoked = z.infer<typeof Revoked>;

const PresenceQuery = z.object({ requester: z.string().min(1).max(256), agentId: z.string().max(256).optional() });
type PresenceQuery = z.infer<typeof PresenceQuery>;

const HeldAgent = z.object({
  id: z.string().max(256),
  connectedAt: z.string().nullable(),
  lastSeenAt: z.string().nullable(),
  clockSkewMs: z.number().nullable(),
});

const PresenceAnswer = z.object({ origin: z.string().min(1).max(256), url: z.string().max(2048), agents: z.array(HeldAgent) });
type PresenceAnswer = z.infer<typeof PresenceAnswer>;

/** An agent held by another controller, as that controller reports it. */
export interface RemoteHeld {
  id: string;
  /** The holder's advertise URL. */
  holder: string;
  connectedAt: string | null;
  lastSeenAt: string | null;
  clockSkewMs: number | null;
}

export interface ClusterPresence {
  /** Agents other controllers hold now (all, or only `agentId`); empty when the bus is down. */
  remote(agentId?: string): Promise<Map<string, RemoteHeld>>;
  /** Tells every controller an agent was revoked here: the one holding its session ends it. */
  announceRevoked(agentId: string): void;
  close(): void;
}

export interface PresenceDeps {
  link: BusLink;
  controllerId: string;
  advertiseUrl: string;
  hub: AgentHub;
  log: Logger;
  /** Upper bound of one query. */
  maxWaitMs: number;
  /** Silence after an answer that ends a query early. */
  stallMs: number;
  /** Ends this controller's session of a revoked agent (the hub's revoke: it closes the session). */
  endRevoked(agentId: string): Promise<unknown>;
}

export function createPresence(deps: PresenceDeps): ClusterPresence {
  const { link, controllerId, log } = deps;
  // Held here: what the hub said at connect (its skew and times), dropped at disconnect.
  const held = new Map<string, { connectedAt: string | null; clockSkewMs: number | null }>();
  const offHub = deps.hub.on((event) => {
    if (event.type === 'agent-connected') held.set(event.agent.id, { connectedAt: event.agent.connectedAt, clockSkewMs: event.agent.clockSkewMs });
    else if (event.type === 'agent-disconnected') held.delete(event.agent.id);
  });
  let sub: Subscription | null = null;
  let revokedSub: Subscription | null = null;
  let peersLastTime = 0;

  function onRevoked(msg: Msg): void {
    let revoked: Revoked;
    try {
      revoked = decodeMessage(Revoked, msg.data, 'revoked');
    } catch (error) {
      log.warn({ err: error }, 'bad revoke notice dropped');
      return;
    }
    if (revoked.origin === controllerId || !deps.hub.isConnected(revoked.agentId)) return;
    log.info({ agentId: revoked.agentId, by: revoked.origin }, 'agent revoked on another controller; ending its session here');
    deps.endRevoked(revoked.agentId).catch((error: unknown) => log.error({ err: error, agentId: revoked.agentId }, 'ending a revoked agent session failed'));
  }

  function answer(msg: Msg): void {
    if (!msg.reply) return;
    let query: PresenceQuery;
    try {
      query = decodeMessage(PresenceQuery, msg.data, 'presence query');
    } catch (error) {
      log.warn({ err: error }, 'bad presence query dropped');
      return;
    }
    if (query.requester === controllerId) return;
    const now = new Date().toISOString();
    const agents: PresenceAnswer['agents'] = [];
    const ids = query.agentId === undefined ? [...held.keys()] : held.has(query.agentId) ? [query.agentId] : [];
    for (const id of ids) {
      // A session the hub no longer has (its disconnect event not yet seen) is not reported.
      if (!deps.hub.isConnected(id)) continue;
      const entry = held.get(id)!;
      agents.push({ id, connectedAt: entry.connectedAt, lastSeenAt: now, clockSkewMs: entry.clockSkewMs });
    }
    try {
      msg.respond(encodeMessage({ origin: controllerId, url: deps.advertiseUrl, agents } satisfies PresenceAnswer));
    } catch (error) {
      log.debug({ err: error }, 'presence answer not sent');
    }
  }

  link.onConnected(() => {
    const nc = link.connection();
    if (nc === null || sub !== null) return;
    sub = nc.subscribe(PRESENCE_SUBJECT, { callback: (error, msg) => (error ? undefined : answer(msg)) });
    revokedSub = nc.subscribe(REVOKED_SUBJECT, { callback: (error, msg) => (error ? undefined : onRevoked(msg)) });
  });

  return {
    remote(agentId) {
      const found = new Map<string, RemoteHeld>();
      const nc = link.connection();
      if (nc === null || !link.connected()) return Promise.resolve(found);
      const inbox = createInbox();
      return new Promise((resolve) => {
        const origins = new Set<string>();
        let stall: NodeJS.Timeout | null = null;
        const done = (): void => {
          clearTimeout(deadline);
          if (stall) clearTimeout(stall);
          inboxSub.unsubscribe();
          peersLastTime = origins.size;
          resolve(found);
        };
        const deadline = setTimeout(done, deps.maxWaitMs);
        const inboxSub = nc.subscribe(inbox, {
          callback: (error, msg) => {
            if (error) return;
            let reply: PresenceAnswer;
            try {
              reply = decodeMessage(PresenceAnswer, msg.data, 'presence answer');
            } catch (failure) {
              log.warn({ err: failure }, 'bad presence answer dropped');
              return;
            }
            origins.add(reply.origin);
            for (const agent of reply.agents) {
              const known = found.get(agent.id);
              // Two holders for a moment (a move not yet noticed by the old one): the newer session wins.
              if (known && (known.connectedAt ?? '') >= (agent.connectedAt ?? '')) continue;
              found.set(agent.id, { id: agent.id, holder: reply.url, connectedAt: agent.connectedAt, lastSeenAt: agent.lastSeenAt, clockSkewMs: agent.clockSkewMs });
            }
            if (peersLastTime > 0 && origins.size >= peersLastTime) return done();
            if (stall) clearTimeout(stall);
            stall = setTimeout(done, deps.stallMs);
          },
        });
        try {
          nc.publish(PRESENCE_SUBJECT, encodeMessage({ requester: controllerId, ...(agentId === undefined ? {} : { agentId }) } satisfies PresenceQuery), { reply: inbox });
        } catch (error) {
          log.debug({ err: error }, 'presence query not sent');
          done();
        }
      });
    },
    announceRevoked(agentId) {
      const nc = link.connection();
      if (nc === null || !link.connected()) {
        log.warn({ agentId }, 'the cluster bus is down: a session of this revoked agent on another controller lasts until its link drops (its credential is refused from now on)');
        return;
      }
      nc.publish(REVOKED_SUBJECT, encodeMessage({ origin: controllerId, agentId } satisfies Revoked));
    },
    close() {
      offHub();
      sub?.unsubscribe();
      revokedSub?.unsubscribe();
      sub = null;
      revokedSub = null;
    },
  };
}
