/** JSON views of agents for the API and the event bus. */
import type { Facts } from '../../shared/frames.js';
import type { AgentHub, AgentInfo } from '../hub/types.js';

/** An agent as GET /api/agents shows it (README, "HTTP API"): the hub's record without internals. */
export type AgentView = Omit<AgentInfo, 'clockSkewMs'>;

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

export function viewAgent(info: AgentInfo): AgentView {
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
  };
}

export async function listAgentViews(hub: AgentHub): Promise<AgentView[]> {
  return (await hub.agents()).map(viewAgent);
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

/** GET /api/agents/:id: the agent, its facts, and its peers split by datacenter. */
export async function viewAgentDetail(hub: AgentHub, id: string): Promise<AgentDetailView | null> {
  const info = await hub.agent(id);
  if (!info) return null;
  const local: PeerView[] = [];
  const remote: PeerView[] = [];
  for (const row of await hub.agents()) {
    if (row.id === id) continue;
    const facts = hub.facts(row.id);
    const peer: PeerView = {
      id: row.id,
      connected: hub.isConnected(row.id),
      snapshotBackend: facts?.snapshotBackend ?? null,
      hasSnapshots: (facts?.snapshots.length ?? 0) > 0,
    };
    const sameDc = info.datacenter !== null && row.datacenter === info.datacenter;
    (sameDc ? local : remote).push(peer);
  }
  return { ...viewAgent(info), clockSkewMs: info.clockSkewMs, facts: hub.facts(id), peers: { local, remote } };
}
