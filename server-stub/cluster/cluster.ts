/**
 * Cluster mode's routing layer (`--bus nats://...`): one NATS link, and on it presence and serving
 * for the agents this controller holds (holder.ts), operations routed to other controllers'
 * agents (routed.ts), lookups by operation id (lookup.ts) and the fleet's events (events-bridge.ts).
 * docs/scale-out.md ("The bus") lists the subjects, messages and failure modes.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';
import type { SeedwireEventBus } from '../events/bus.js';
import type { AgentHub } from '../hub/types.js';
import type { OperationRunner } from '../ops/types.js';
import type { Audit } from '../types.js';
import { createEventsBridge, type EventsBridge } from './events-bridge.js';
import { createHolder, type Holder } from './holder.js';
import { CLUSTER_LIMITS, type ClusterLimits } from './limits.js';
import { BusRequestError, createBusLink, type BusLink } from './link.js';
import { createLookup, type ClusterLookup } from './lookup.js';
import { createMembers, type ClusterMembers } from './members.js';
import { createPresence, type ClusterPresence } from './presence.js';
import { decodeMessage, encodeMessage, MoveReply, type MoveRequest } from './messages.js';
import { createRoutedOps, type RoutedOps } from './routed.js';
import { SUBJECTS } from './subjects.js';

export interface ClusterOptions {
  /** nats://[user:pass@]host:port (comma-separated for several servers). */
  busUrl: string;
  /** Where agents and peers reach this controller; @default its own listening URL. */
  advertiseUrl: string;
  limits?: Partial<ClusterLimits>;
}

export interface ClusterDeps {
  hub: AgentHub;
  operations: OperationRunner;
  audit: Audit;
  /** This controller's own events. */
  bus: SeedwireEventBus;
  /** What this controller's viewers follow: filled here with every controller's events. */
  fleetBus: SeedwireEventBus;
  readOutput(operationId: string): Promise<string>;
  /** Ends this controller's session of an agent revoked on another controller (the hub's revoke). */
  endRevoked(agentId: string): Promise<unknown>;
  log: Logger;
}

/** How an agent sends itself to another controller: the result of `summon`. */
export type SummonOutcome = 'here' | 'moved' | 'not-held' | 'refused' | 'unavailable';

export interface Cluster {
  /** This process's name on the bus (fresh per start). */
  readonly controllerId: string;
  readonly advertiseUrl: string;
  readonly link: BusLink;
  readonly routed: RoutedOps;
  readonly lookup: ClusterLookup;
  readonly holder: Holder;
  readonly events: EventsBridge;
  /** Which other controller holds which agent (asked over the bus, for the API's agent views). */
  readonly presence: ClusterPresence;
  /** How many controllers share the fleet now (admission paces each by its share). */
  readonly members: ClusterMembers;
  /**
   * Asks the controller holding the agent to send it here (a seed this controller drives needs
   * it): 'moved' when the holder sent the agent a move frame. Never rejects; logs refusals.
   */
  summon(agentId: string): Promise<SummonOutcome>;
  /** Fails routed operations still waited on, stops answering for held agents, drains the link (idempotent). */
  close(): Promise<void>;
}

/** The URL agents dial for the controller advertising `advertiseUrl` (an http(s) origin): ws(s)://host:port/agent. */
export function agentUrlOf(advertiseUrl: string): string {
  const url = new URL(advertiseUrl);
  return `${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}/agent`;
}

/** Refuses an advertise URL peers could not use; the message names the flag. */
export function checkAdvertiseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new SeedwireError('SEEDWIRE_CONFIG', `--advertise-url: not a URL: '${value}'`);
  }
  if (!['http:', 'https:'].includes(url.protocol)) throw new SeedwireError('SEEDWIRE_CONFIG', `--advertise-url: expected http:// or https://, got ${url.protocol}//`);
  if (url.username !== '' || url.password !== '') throw new SeedwireError('SEEDWIRE_CONFIG', '--advertise-url: must not carry credentials');
  return url.origin;
}

export function createCluster(options: ClusterOptions, deps: ClusterDeps): Cluster {
  const limits: ClusterLimits = { ...CLUSTER_LIMITS, ...options.limits };
  const controllerId = randomBytes(6).toString('hex');
  const advertiseUrl = checkAdvertiseUrl(options.advertiseUrl);
  const log = deps.log.child({ component: 'cluster', controllerId });
  const link = createBusLink({ url: options.busUrl, name: `seedwire-controller ${controllerId} ${advertiseUrl}`, log, reconnectWaitMs: limits.reconnectWaitMs });
  log.info({ bus: link.address.shown, advertiseUrl }, 'cluster mode');
  const { fleetBus } = deps;
  const holder = createHolder({
    link,
    controllerId,
    advertiseUrl,
    operations: deps.operations,
    audit: deps.audit,
    readOutput: deps.readOutput,
    log,
    aliveMs: limits.aliveMs,
    maxMessageBytes: limits.maxMessageBytes,
    moveAgent: (agentId, url, reason) => deps.hub.move(agentId, agentUrlOf(url), reason),
    memberTimeoutMs: limits.lookupTimeoutMs,
  });
  const routed = createRoutedOps({
    link,
    controllerId,
    log,
    knowsAgent: async (agentId) => (await deps.hub.agent(agentId)) !== null,
    requestTimeoutMs: limits.requestTimeoutMs,
    silenceMs: limits.silenceMs,
    orphanFailMs: limits.orphanFailMs,
    busDownFailMs: limits.busDownFailMs,
    maxOutputBytes: limits.maxOutputBytes,
    keepEnded: limits.keepEnded,
  });
  const lookup = createLookup({
    link,
    controllerId,
    operations: deps.operations,
    audit: deps.audit,
    readOutput: deps.readOutput,
    holds: (agentId) => deps.hub.isConnected(agentId),
    local: deps.bus,
    fleet: deps.fleetBus,
    log,
    timeoutMs: limits.lookupTimeoutMs,
    maxMessageBytes: limits.maxMessageBytes,
  });
  const events = createEventsBridge({ link, controllerId, local: deps.bus, fleet: fleetBus, log, maxMessageBytes: limits.maxMessageBytes, lingerMs: limits.eventsLingerMs, prepareTimeoutMs: limits.eventsPrepareTimeoutMs });
  // A listing waits at most the lookup's bound; 250 ms of silence after an answer ends it early.
  const presence = createPresence({ link, controllerId, advertiseUrl, hub: deps.hub, log, maxWaitMs: limits.lookupTimeoutMs, stallMs: 250, endRevoked: deps.endRevoked });
  const members = createMembers({ link, controllerId, advertiseUrl, log, announceMs: limits.memberAnnounceMs, expireMs: 3 * limits.memberAnnounceMs });
  const offHub = deps.hub.on((event) => {
    if (event.type === 'agent-connected') holder.hold(event.agent.id);
    else if (event.type === 'agent-disconnected') holder.release(event.agent.id);
  });

  async function summon(agentId: string): Promise<SummonOutcome> {
    if (deps.hub.isConnected(agentId)) return 'here';
    if (!link.connected()) return 'unavailable';
    const request: MoveRequest = { requester: controllerId, url: advertiseUrl, reason: 'a seed driven by this controller needs the agent' };
    try {
      const answer = await link.request(SUBJECTS.agent(agentId, 'move'), encodeMessage(request), limits.requestTimeoutMs);
      const reply = decodeMessage(MoveReply, answer.data, 'move reply');
      if (!reply.ok) {
        log.warn({ agentId, code: reply.error.code, err: reply.error.message }, 'the agent holder refused to move the agent here');
        return 'refused';
      }
      if (reply.moved) log.info({ agentId }, 'agent summoned from the controller holding it');
      return reply.moved ? 'moved' : 'here';
    } catch (error) {
      // No responders: no controller holds the agent now; it is asked again while the seed waits.
      if (error instanceof BusRequestError && error.reason === 'no-responders') return 'not-held';
      log.warn({ err: error, agentId }, 'could not summon the agent');
      return 'unavailable';
    }
  }

  let closing: Promise<void> | null = null;
  return {
    controllerId,
    advertiseUrl,
    link,
    routed,
    lookup,
    holder,
    events,
    presence,
    members,
    summon,
    close() {
      closing ??= (async () => {
        offHub();
        routed.close();
        holder.close();
        lookup.close();
        events.close();
        presence.close();
        members.close();
        await link.close();
      })();
      return closing;
    },
  };
}
