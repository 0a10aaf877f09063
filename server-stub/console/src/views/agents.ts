/**
 * Agents: every known agent with its connection, MySQL state, datadir usage and snapshots,
 * grouped by datacenter (a header per datacenter with how many of its agents are connected).
 */
import { api } from '../api.js';
import { fill, h, link } from '../dom.js';
import { formatBool, formatBytes, formatTime } from '../format.js';
import type { Agent } from '../types.js';
import { badge, emptyRow, errorLine, makeRefresher, type View, type ViewContext } from '../view.js';

const DETAIL_CONCURRENCY = 6;

export function createAgentsView(ctx: ViewContext): View {
  const agents = new Map<string, Agent>();
  const head = h('thead', {}, h('tr', {}, ...COLUMNS.map((t) => h('th', {}, t))));
  const table = h('table', { testid: 'agents-table' }, head);
  const error = errorLine();
  const summary = h('p', { class: 'muted', testid: 'agents-summary' });
  const root = h('section', { class: 'view', testid: 'view-agents' }, h('h1', {}, 'Agents'), summary, error, table);

  function render(): void {
    const groups = groupByDatacenter([...agents.values()]);
    if (groups.length === 0) {
      fill(table, head, h('tbody', { testid: 'agents-body' }, emptyRow(COLUMNS.length, 'No agent has connected yet.')));
      summary.textContent = '';
      return;
    }
    fill(table, head, ...groups.map(renderGroup));
    const connected = [...agents.values()].filter((a) => a.connected).length;
    summary.textContent = `${connected} of ${agents.size} agent${agents.size === 1 ? '' : 's'} connected, in ${groups.length} datacenter${groups.length === 1 ? '' : 's'}.`;
  }

  const refresh = makeRefresher(
    async () => {
      const list = await api.agents(ctx.signal);
      // The list may come without facts; fetch those agents one by one (a few at a time).
      const missing = list.filter((a) => a.facts === undefined);
      const detailed = new Map<string, Agent>();
      for (let i = 0; i < missing.length; i += DETAIL_CONCURRENCY) {
        const batch = await Promise.all(missing.slice(i, i + DETAIL_CONCURRENCY).map((a) => api.agent(a.id, ctx.signal).catch(() => a)));
        for (const a of batch) detailed.set(a.id, a);
      }
      agents.clear();
      for (const a of list) agents.set(a.id, detailed.get(a.id) ?? a);
      render();
    },
    error,
    ctx.signal,
  );

  return {
    title: 'Agents',
    root,
    refresh,
    onEvent(event) {
      if (event.type !== 'agent') return;
      const agent = event.data as Agent;
      if (typeof agent?.id !== 'string') return;
      const known = agents.get(agent.id);
      agents.set(agent.id, { ...known, ...agent, facts: agent.facts ?? known?.facts ?? null });
      render();
    },
  };
}

const COLUMNS = ['Agent', 'Datacenter', 'Connected', 'MySQL', 'Datadir used', 'Free', 'Snapshots', 'Since / last seen'];
/** Where agents without a datacenter are listed (last). */
const NO_DATACENTER = '';

interface Group {
  datacenter: string;
  agents: Agent[];
}

/** Datacenters in name order (agents without one last), agents by id within each. */
export function groupByDatacenter(list: readonly Agent[]): Group[] {
  const byDc = new Map<string, Agent[]>();
  for (const agent of list) {
    const dc = agent.datacenter ?? NO_DATACENTER;
    byDc.set(dc, [...(byDc.get(dc) ?? []), agent]);
  }
  return [...byDc.entries()]
    .sort(([a], [b]) => (a === NO_DATACENTER ? 1 : b === NO_DATACENTER ? -1 : a.localeCompare(b)))
    .map(([datacenter, agents]) => ({ datacenter, agents: agents.sort((a, b) => a.id.localeCompare(b.id)) }));
}

function renderGroup(group: Group): HTMLTableSectionElement {
  const connected = group.agents.filter((a) => a.connected).length;
  const total = group.agents.length;
  const name = group.datacenter === NO_DATACENTER ? 'No datacenter' : group.datacenter;
  const key = group.datacenter === NO_DATACENTER ? '-' : group.datacenter;
  const header = h(
    'tr',
    { class: 'group', testid: `dc-group-${key}`, 'data-connected': connected, 'data-total': total },
    h(
      'th',
      { colspan: COLUMNS.length, scope: 'rowgroup' },
      h('span', { class: 'group-name' }, name),
      ' ',
      h('span', { testid: `dc-count-${key}`, class: connected === total ? 'badge badge-ok' : connected === 0 ? 'badge badge-off' : 'badge badge-warn' }, `${connected}/${total} connected`),
    ),
  );
  return h('tbody', { testid: `dc-body-${key}` }, header, group.agents.map(renderRow));
}

function renderRow(agent: Agent): HTMLTableRowElement {
  const facts = agent.facts ?? null;
  const mysql = !facts ? '—' : facts.mysqlConfigured === false ? 'not configured' : formatBool(facts.mysqlRunning, 'running', 'stopped');
  return h(
    'tr',
    { testid: `agent-row-${agent.id}`, class: agent.connected ? '' : 'offline' },
    h('td', {}, link(`#/agents/${encodeURIComponent(agent.id)}`, agent.id, `agent-link-${agent.id}`), agent.hostname && agent.hostname !== agent.id ? h('div', { class: 'muted small' }, agent.hostname) : null),
    h('td', {}, agent.datacenter ?? '—'),
    h('td', { testid: `agent-connected-${agent.id}` }, agent.connected ? badge('connected', 'ok') : badge('offline', 'off')),
    h('td', { testid: `agent-mysql-${agent.id}` }, facts?.mysqlRunning === true ? badge(mysql, 'ok') : facts?.mysqlRunning === false ? badge(mysql, 'off') : mysql),
    h('td', { class: 'num' }, formatBytes(facts?.datadirBytes)),
    h('td', { class: 'num' }, formatBytes(facts?.datadirFreeBytes)),
    h('td', { class: 'num', testid: `agent-snapshots-${agent.id}` }, facts ? String(facts.snapshots.length) : '—'),
    h('td', { class: 'time' }, agent.connected ? formatTime(agent.connectedAt) : formatTime(agent.lastSeenAt)),
  );
}
