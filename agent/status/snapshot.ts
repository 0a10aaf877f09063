/**
 * The agent's local status: what host monitoring needs to alert when the agent cannot reach the
 * controller, without asking the controller. Pure: built from the daemon's parts at each refresh.
 */
import type { LinkStatusView } from '../connection/link-status.js';

export interface RunningCallView {
  id: string;
  op: string;
  startedAt: string;
  seedId: string | undefined;
}

export interface AgentStatus {
  agentId: string;
  hostname: string;
  datacenter: string | null;
  version: string;
  pid: number;
  bootId: string;
  startedAt: string;
  /** When this status was written; older than a few intervals means the agent is hung or gone. */
  updatedAt: string;
  intervalSeconds: number;
  /** `stopped` is written once on a graceful stop, so an intended stop is told from a crash. */
  agent: 'running' | 'stopping' | 'stopped';
  /** The controller the agent is on (or, while not connected, the one it is dialing or last dialed). */
  controller: string;
  /** The configured controllers, in the order they are tried. */
  controllers: readonly string[];
  connection: LinkStatusView;
  operations: Array<{ id: string; op: string; startedAt: string }>;
  seeds: Array<{ seedId: string; op: string; callId: string; startedAt: string }>;
}

export interface StatusSources {
  identity: Pick<AgentStatus, 'agentId' | 'hostname' | 'datacenter' | 'version' | 'pid' | 'bootId' | 'startedAt' | 'intervalSeconds' | 'controllers'>;
  link(): LinkStatusView;
  calls(): RunningCallView[];
}

export function buildStatus(sources: StatusSources, agent: AgentStatus['agent'], now = new Date()): AgentStatus {
  const calls = sources.calls();
  const connection = sources.link();
  return {
    ...sources.identity,
    controller: connection.controller,
    updatedAt: now.toISOString(),
    agent,
    connection,
    operations: calls.filter((c) => c.seedId === undefined).map(({ id, op, startedAt }) => ({ id, op, startedAt })),
    seeds: calls.flatMap((c) => (c.seedId === undefined ? [] : [{ seedId: c.seedId, op: c.op, callId: c.id, startedAt: c.startedAt }])),
  };
}
