/** Audit log: newest first, live. */
import { api } from '../api.js';
import { fill, h, link } from '../dom.js';
import { formatJson, formatTime } from '../format.js';
import type { AuditEntry } from '../types.js';
import { emptyRow, errorLine, makeRefresher, stateBadge, type View, type ViewContext } from '../view.js';

const LIMIT = 200;

export function createAuditView(ctx: ViewContext): View {
  let entries: AuditEntry[] = [];
  const error = errorLine();
  const body = h('tbody', { testid: 'audit-body' });
  const root = h(
    'section',
    { class: 'view', testid: 'view-audit' },
    h('h1', {}, 'Audit log'),
    error,
    h('table', { testid: 'audit-table' }, h('thead', {}, h('tr', {}, ...['When', 'Actor', 'Agent', 'Action', 'Params', 'Outcome', 'Message'].map((t) => h('th', {}, t)))), body),
  );

  function render(): void {
    fill(
      body,
      entries.length > 0
        ? entries.map((e) =>
            h(
              'tr',
              { testid: 'audit-row' },
              h('td', { class: 'time' }, formatTime(e.at)),
              h('td', {}, e.actor.startsWith('seed:') ? link(`#/seeds/${encodeURIComponent(e.actor.slice(5))}`, e.actor) : e.actor),
              h('td', {}, e.agentId ? link(`#/agents/${encodeURIComponent(e.agentId)}`, e.agentId) : '—'),
              h('td', {}, e.action),
              h('td', { class: 'mono small' }, formatJson(e.params, 80)),
              h('td', {}, stateBadge(e.outcome)),
              h('td', { class: 'small' }, e.message ?? ''),
            ),
          )
        : emptyRow(7, 'Nothing audited yet.'),
    );
  }

  const refresh = makeRefresher(
    async () => {
      entries = await api.audit(LIMIT, ctx.signal);
      render();
    },
    error,
    ctx.signal,
  );

  return {
    title: 'Audit log',
    root,
    refresh,
    onEvent(event) {
      if (event.type !== 'audit') return;
      entries = [event.data as AuditEntry, ...entries].slice(0, LIMIT);
      render();
    },
  };
}
