/** The operations table shared by the Operations page and the agent page. */
import { fill, h, link } from '../dom.js';
import { elapsedSeconds, formatDuration, formatJson, formatTime } from '../format.js';
import type { Operation } from '../types.js';
import { emptyRow, stateBadge } from '../view.js';

const LIMIT = 200;

export class OperationsTable {
  readonly root: HTMLTableElement;
  private readonly body: HTMLTableSectionElement;
  private readonly rows = new Map<string, Operation>();

  constructor(
    private readonly options: { showAgent: boolean; testid: string; filter?: (op: Operation) => boolean },
  ) {
    this.body = h('tbody');
    const headings = ['Operation', ...(options.showAgent ? ['Agent'] : []), 'Params', 'State', 'Started', 'Took', 'Outcome'];
    this.root = h('table', { testid: options.testid }, h('thead', {}, h('tr', {}, ...headings.map((t) => h('th', {}, t)))), this.body);
  }

  replace(ops: readonly Operation[]): void {
    this.rows.clear();
    for (const op of ops) this.rows.set(op.id, op);
    this.render();
  }

  /**
   * Applies an `operation` event or an API answer; returns whether the table changed. An answer
   * can arrive after the event that ended the operation (the POST's 202 and the event stream race):
   * an operation that has ended never goes back to `running`.
   */
  upsert(op: Operation): boolean {
    if (typeof op?.id !== 'string' || (this.options.filter && !this.options.filter(op))) return false;
    const known = this.rows.get(op.id);
    this.rows.set(op.id, known && known.state !== 'running' && op.state === 'running' ? { ...op, ...known } : { ...known, ...op });
    this.render();
    return true;
  }

  /** The latest known state of an operation shown in the table. */
  get(id: string): Operation | undefined {
    return this.rows.get(id);
  }

  private render(): void {
    const ops = [...this.rows.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, LIMIT);
    const columns = this.options.showAgent ? 7 : 6;
    fill(this.body, ops.length > 0 ? ops.map((op) => this.renderRow(op)) : emptyRow(columns, 'No operations yet.'));
  }

  private renderRow(op: Operation): HTMLTableRowElement {
    const outcome = op.error ? `${op.error.code}: ${op.error.message}` : op.exitCode !== null && op.exitCode !== undefined ? `exit ${op.exitCode}` : '';
    return h(
      'tr',
      { testid: `op-row-${op.id}` },
      h('td', {}, link(`#/operations/${encodeURIComponent(op.id)}`, op.op)),
      this.options.showAgent ? h('td', {}, link(`#/agents/${encodeURIComponent(op.agentId)}`, op.agentId)) : null,
      h('td', { class: 'mono small' }, formatJson(op.params, 60)),
      h('td', { testid: `op-row-state-${op.id}` }, stateBadge(op.state)),
      h('td', { class: 'time' }, formatTime(op.createdAt)),
      h('td', { class: 'num' }, op.state === 'running' ? '…' : formatDuration(elapsedSeconds(op.createdAt, op.endedAt))),
      h('td', { class: op.error ? 'error small' : 'small' }, outcome),
    );
  }
}
