/** `seedwire agents`, `seedwire agent ID`. */
import type { AgentDetailView, ApiClient, PeerView } from '../../client/api.js';
import { formatAgo, formatBytes, formatTime, renderPairs, renderTable, yesNo } from '../format.js';
import { printJson, type Io } from '../io.js';

/** Facts are per agent (GET /api/agents/:id); asked a few at a time so a large fleet is not one burst. */
const DETAIL_CONCURRENCY = 8;

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      out[index] = await fn(items[index]!);
    }
  });
  await Promise.all(workers);
  return out;
}

export async function listAgents(client: ApiClient, io: Io, json: boolean): Promise<number> {
  const agents = await client.agents();
  if (json) {
    printJson(io, agents);
    return 0;
  }
  const details = await mapLimited(agents, DETAIL_CONCURRENCY, (agent) => client.agent(agent.id));
  const now = io.now();
  const rows = details.map((a) => [
    a.id,
    a.datacenter ?? '-',
    yesNo(a.connected),
    a.connected ? 'now' : formatAgo(a.lastSeenAt, now),
    a.facts?.mysqlConfigured === false ? 'n/a' : yesNo(a.facts?.mysqlRunning),
    formatBytes(a.facts?.datadirBytes),
    formatBytes(a.facts?.datadirFreeBytes),
  ]);
  io.stdout.write(rows.length === 0 ? 'no agent has connected yet\n' : renderTable(['id', 'datacenter', 'connected', 'last seen', 'mysql running', 'datadir size', 'free'], rows));
  return 0;
}

function describePeers(peers: PeerView[]): string {
  if (peers.length === 0) return '-';
  return peers.map((p) => `${p.id}${p.connected ? '' : ' (offline)'}${p.snapshotBackend && p.snapshotBackend !== 'none' ? ` [${p.snapshotBackend}]` : ''}`).join(', ');
}

export function renderAgent(agent: AgentDetailView, now: number): string {
  const f = agent.facts;
  const pairs: Array<[string, string]> = [
    ['id', agent.id],
    ['hostname', agent.hostname ?? '-'],
    ['datacenter', agent.datacenter ?? '-'],
    ['connected', agent.connected ? `yes, since ${formatTime(agent.connectedAt)}` : `no, last seen ${formatAgo(agent.lastSeenAt, now)}`],
    ['version', agent.version ?? '-'],
    ['clock skew', agent.clockSkewMs === null ? '-' : `${agent.clockSkewMs} ms`],
  ];
  if (f) {
    pairs.push(
      ['mysql', f.mysqlConfigured ? `${f.mysqlRunning === null ? 'state unknown' : f.mysqlRunning ? 'running' : 'stopped'}${f.mysqlPort ? ` on port ${f.mysqlPort}` : ''}` : 'not configured (no mysql section)'],
      ['datadir', f.datadir ? `${f.datadir} (${formatBytes(f.datadirBytes)}, ${formatBytes(f.datadirFreeBytes)} free)` : '-'],
      ['snapshots', `${f.snapshotBackend}${f.snapshots.length > 0 ? `: ${f.snapshots.map((s) => s.name).join(', ')}` : ''}`],
      ['mounted', f.mounted ? `${f.mounted.name} at ${f.mounted.mountPoint}` : '-'],
      ['backup tool', f.backupTool ?? '-'],
      ['custom commands', f.customCommands.length > 0 ? f.customCommands.join(', ') : '-'],
      ['incomplete seed', f.incompleteSeed ?? '-'],
      ['facts from', formatTime(f.collectedAt)],
    );
  } else {
    pairs.push(['facts', 'not reported yet']);
  }
  pairs.push(['peers, local', describePeers(agent.peers.local)], ['peers, remote', describePeers(agent.peers.remote)]);
  return renderPairs(pairs);
}

export async function showAgent(client: ApiClient, io: Io, id: string, json: boolean): Promise<number> {
  const agent = await client.agent(id);
  if (json) printJson(io, agent);
  else io.stdout.write(renderAgent(agent, io.now()));
  return 0;
}
