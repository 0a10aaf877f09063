/** JSON views of agents for the API and the event bus. */
import type { Facts } from '../../shared/frames.js';
import type { RemoteHeld } from '../cluster/presence.js';
import type { AgentHub, AgentInfo } from '../hub/types.js';

/**
 * An agent as GET /api/agents shows it (README, "HTTP API"): the hub's record without internals.
 * In cluster mode also `holder`: the advertise URL of the controller holding its session (null: none).
 */
export type AgentView = Omit<AgentInfo, 'clockSkewMs'> & { holder?: string | null };

/**
 * Cluster mode: whom this controller is (its advertise URL) and the agents other controllers hold
 * (cluster/presence.ts), so any controller shows the whole fleet's sessions.
 */
export interface FleetPresence {
  self: string;
  remote: Map<string, RemoteHeld>;
}

/** A row of this controller's hub seen with the fleet's sessions: connected when another controller holds it. */
function withPresence(info: AgentInfo, hub: AgentHub, fleet: FleetPresence | null): AgentInfo & { holder?: string | null } {
  if (fleet === null) return info;
  if (hub.isConnected(info.id)) return { ...info, holder: fleet.self };
  const remote = fleet.remote.get(info.id);
  if (!remote) return { ...info, holder: null };
  return { ...info, connected: true, connectedAt: remote.connectedAt ?? info.connectedAt, lastSeenAt: remote.lastSeenAt ?? info.lastSeenAt, clockSkewMs: remote.clockSkewMs, holder: remote.holder };
}

export interface PeerView {
  id: string;
  connected: boolean;
  snapshotBackend: string | null;
  hasSnapshots: boolean;
}

/** GET /api/agents/:id: the agent with its clock skew, its facts and its peers by datacenter. */
export interface AgentDetailView extends AgentView {
  clockSkewMs: number | null;
  facts: Facts | null;
  peers: { local: PeerView[]; remote: PeerView[] };
}

export function viewAgent(info: AgentInfo & { holder?: string | null }): AgentView {
  return {
    id: info.id,
    hostname: info.hostname,
    datacenter: info.datacenter,
    connected: info.connected,
    connectedAt: info.connectedAt,
    lastSeenAt: info.lastSeenAt,
    version: info.version,
    capabilities: info.capabilities,
    ...(info.identity ? { identity: info.identity } : {}),
    ...(info.holder === undefined ? {} : { holder: info.holder }),
  };
}

export async function listAgentViews(hub: AgentHub, fleet: FleetPresence | null = null): Promise<AgentView[]> {
  return (await hub.agents()).map((info) => viewAgent(withPresence(info, hub, fleet)));
}

/** An agent as its `agent` events carry it: the detail without peers. */
export type AgentEventView = Omit<AgentDetailView, 'peers'>;

/**
 * What an `agent` event carries: the agent and its facts, not its peers. Peers are a walk over
 * the whole fleet, and an event is published for every connect, disconnect and facts push: with
 * them a fleet coming up cost O(n²) (70% of a connecting controller's CPU at 1,000 agents). The
 * console merges an event into what it fetched and keeps the peers it has.
 */
export async function viewAgentEvent(hub: AgentHub, id: string): Promise<AgentEventView | null> {
  const info = await hub.agent(id);
  if (!info) return null;
  return agentEventView(info, hub.facts(id));
}

/** The same view from what the hub already holds (a connect or disconnect event's agent). */
export function agentEventView(info: AgentInfo, facts: Facts | null): AgentEventView {
  return { ...viewAgent(info), clockSkewMs: info.clockSkewMs, facts };
}

/**
 * GET /api/agents/:id: the agent, its facts, and its peers split by datacenter. `storedFacts`: the
 * facts the store last has (cluster mode: another controller's agent, whose facts this process never heard).
 */
export async function viewAgentDetail(hub: AgentHub, id: string, fleet: FleetPresence | null = null, storedFacts?: (id: string) => Promise<Facts | null>): Promise<AgentDetailView | null> {
  const held = await hub.agent(id);
  if (!held) return null;
  const info = withPresence(held, hub, fleet);
  const local: PeerView[] = [];
  const remote: PeerView[] = [];
  for (const row of await hub.agents()) {
    if (row.id === id) continue;
    const facts = hub.facts(row.id);
    const peer: PeerView = {
      id: row.id,
      connected: hub.isConnected(row.id) || (fleet?.remote.has(row.id) ?? false),
      snapshotBackend: facts?.snapshotBackend ?? null,
      hasSnapshots: (facts?.snapshots.length ?? 0) > 0,
    };
    const sameDc = info.datacenter !== null && row.datacenter === info.datacenter;
    (sameDc ? local : remote).push(peer);
  }
  const facts = hub.facts(id) ?? (storedFacts ? await storedFacts(id) : null);
  return { ...viewAgent(info), clockSkewMs: info.clockSkewMs, facts, peers: { local, remote } };
}
