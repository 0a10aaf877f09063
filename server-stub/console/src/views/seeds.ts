/** Seeds: every seed with its state and progress, live. */
import { api } from '../api.js';
import { fill, h, link } from '../dom.js';
import { formatPercent, formatTime } from '../format.js';
import type { Seed } from '../types.js';
import { emptyRow, errorLine, makeRefresher, stateBadge, type View, type ViewContext } from '../view.js';

export function createSeedsView(ctx: ViewContext): View {
  const seeds = new Map<string, Seed>();
  const error = errorLine();
  const body = h('tbody');
  const root = h(
    'section',
    { class: 'view', testid: 'view-seeds' },
    h('div', { class: 'title-row' }, h('h1', {}, 'Seeds'), h('a', { href: '#/seeds/new', class: 'button', testid: 'new-seed-link' }, 'New seed')),
    error,
    h('table', { testid: 'seeds-table' }, h('thead', {}, h('tr', {}, ...['Seed', 'Source → target', 'Method', 'State', 'Stage', 'Progress', 'Started', 'Ended'].map((t) => h('th', {}, t)))), body),
  );

  function render(): void {
    const list = [...seeds.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    fill(
      body,
      list.length > 0
        ? list.map((s) =>
            h(
              'tr',
              { testid: `seed-row-${s.id}` },
              h('td', {}, link(`#/seeds/${encodeURIComponent(s.id)}`, s.id)),
              h('td', {}, `${s.source} → ${s.target}`),
              h('td', {}, `${s.method} / ${s.effectiveCompression ?? s.compression}${s.lanes > 1 ? ` / ${s.lanes} lanes` : ''}`),
              h('td', {}, stateBadge(s.state)),
              h('td', {}, s.stage ?? '—'),
              h('td', { class: 'num' }, formatPercent(s.bytesDone, s.bytesTotal)),
              h('td', { class: 'time' }, formatTime(s.createdAt)),
              h('td', { class: 'time' }, formatTime(s.endedAt)),
            ),
          )
        : emptyRow(8, 'No seeds yet.'),
    );
  }

  const refresh = makeRefresher(
    async () => {
      const list = await api.seeds(ctx.signal);
      seeds.clear();
      for (const s of list) seeds.set(s.id, s);
      render();
    },
    error,
    ctx.signal,
  );

  return {
    title: 'Seeds',
    root,
    refresh,
    onEvent(event) {
      if (event.type !== 'seed') return;
      const seed = event.data as Seed;
      if (typeof seed?.id !== 'string') return;
      seeds.set(seed.id, { ...seeds.get(seed.id), ...seed });
      render();
    },
  };
}
