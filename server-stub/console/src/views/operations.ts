/** Operations: recent operations on every agent, live. */
import { api } from '../api.js';
import { h } from '../dom.js';
import type { Operation } from '../types.js';
import { errorLine, makeRefresher, type View, type ViewContext } from '../view.js';
import { OperationsTable } from './opsTable.js';

export function createOperationsView(ctx: ViewContext): View {
  const error = errorLine();
  const table = new OperationsTable({ showAgent: true, testid: 'operations-table' });
  const root = h('section', { class: 'view', testid: 'view-operations' }, h('h1', {}, 'Operations'), error, table.root);
  const refresh = makeRefresher(
    async () => {
      table.replace(await api.operations({ limit: 100 }, ctx.signal));
    },
    error,
    ctx.signal,
  );
  return {
    title: 'Operations',
    root,
    refresh,
    onEvent(event) {
      if (event.type === 'operation') table.upsert(event.data as Operation);
    },
  };
}
