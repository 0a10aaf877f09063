/** One operation: its fields, result or error, live output, and cancel while it runs. */
import { api, describeError } from '../api.js';
import { fill, h, link } from '../dom.js';
import { elapsedSeconds, formatDuration, formatTime } from '../format.js';
import { OutputTail } from '../output.js';
import type { Operation } from '../types.js';
import { errorLine, makeRefresher, stateBadge, type View, type ViewContext } from '../view.js';

export function createOperationView(ctx: ViewContext, operationId: string): View {
  let operation: Operation | null = null;
  const error = errorLine();
  const title = h('h1', {}, 'Operation');
  const fields = h('dl', { class: 'facts', testid: 'op-fields' });
  const resultEl = h('pre', { class: 'result', testid: 'op-result', hidden: true });
  const cancel = h('button', { type: 'button', class: 'danger', testid: 'op-cancel', hidden: true }, 'Cancel');
  const cancelStatus = h('p', { class: 'error', hidden: true, testid: 'op-cancel-error' });
  const output = new OutputTail('op-output');

  cancel.addEventListener('click', () => {
    // Safe to void: confirm never rejects and the follow-up catches its own failure.
    void ctx
      .confirm({ title: 'Cancel operation?', message: `Cancel ${operation?.op ?? 'the operation'} on ${operation?.agentId ?? 'the agent'}? Its whole process group is killed.`, confirmLabel: 'Cancel operation', danger: true })
      .then(async (ok) => {
        if (!ok) return;
        try {
          await api.cancelOperation(operationId);
          cancelStatus.hidden = true;
        } catch (err) {
          cancelStatus.hidden = false;
          cancelStatus.textContent = `Cancel failed: ${describeError(err)}`;
        }
      });
  });

  const root = h(
    'section',
    { class: 'view', testid: 'view-operation' },
    title,
    error,
    h('div', { class: 'actions' }, cancel),
    cancelStatus,
    h('section', { class: 'card' }, fields, resultEl),
    h('section', { class: 'card' }, h('h2', {}, 'Output'), output.root),
  );

  function render(): void {
    const op = operation;
    if (!op) return;
    fill(title, `${op.op} `, stateBadge(op.state, 'op-state'));
    const rows: [string, Node | string][] = [
      ['Id', op.id],
      ['Agent', link(`#/agents/${encodeURIComponent(op.agentId)}`, op.agentId)],
      ['Params', JSON.stringify(op.params ?? {})],
      ['Started', formatTime(op.createdAt)],
      ['Ended', formatTime(op.endedAt)],
      ['Duration', formatDuration(elapsedSeconds(op.createdAt, op.endedAt))],
      ['Exit code', op.exitCode === null || op.exitCode === undefined ? '—' : String(op.exitCode)],
      ['By', op.actor ?? '—'],
    ];
    if (op.error) rows.push(['Error', `${op.error.code}: ${op.error.message}`]);
    fill(fields, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    resultEl.hidden = op.result === null || op.result === undefined;
    resultEl.textContent = resultEl.hidden ? '' : JSON.stringify(op.result, null, 2);
    cancel.hidden = op.state !== 'running';
  }

  const refresh = makeRefresher(
    async () => {
      operation = await api.operation(operationId, ctx.signal);
      render();
      output.follow(operationId);
      output.resync();
    },
    error,
    ctx.signal,
  );

  return {
    title: `Operation ${operationId}`,
    root,
    refresh,
    onEvent(event) {
      if (event.type !== 'operation') return;
      const op = event.data as Operation;
      if (op?.id !== operationId) return;
      operation = { ...operation, ...op };
      render();
    },
    dispose() {
      output.dispose();
    },
  };
}
