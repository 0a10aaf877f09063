/** Agents: every known agent with its connection, MySQL state, datadir usage and snapshots. */
import { api } from '../api.js';
import { fill, h, link } from '../dom.js';
import { formatBool, formatBytes, formatTime } from '../format.js';
import type { Agent } from '../types.js';
import { badge, emptyRow, errorLine, makeRefresher, type View, type ViewContext } from '../view.js';

const DETAIL_CONCURRENCY = 6;

export function createAgentsView(ctx: ViewContext): View {
  const agents = new Map<string, Agent>();
  const body = h('tbody', { testid: 'agents-body' });
  const error = errorLine();
  const table = h(
    'table',
    { testid: 'agents-table' },
    h('thead', {}, h('tr', {}, ...['Agent', 'Datacenter', 'Connected', 'MySQL', 'Datadir used', 'Free', 'Snapshots', 'Since / last seen'].map((t) => h('th', {}, t)))),
    body,
  );
  const root = h('section', { class: 'view', testid: 'view-agents' }, h('h1', {}, 'Agents'), error, table);

  function render(): void {
    const rows = [...agents.values()].sort((a, b) => a.id.localeCompare(b.id)).map(renderRow);
    fill(body, rows.length > 0 ? rows : emptyRow(8, 'No agent has connected yet.'));
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
