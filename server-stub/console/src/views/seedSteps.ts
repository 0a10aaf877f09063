/**
 * A seed's agent-side steps (each an operation linked to the seed), in the order they ran, and
 * one output panel that shows the chosen step's output through the operation output view. A
 * failed step's output opens by itself: its own words say why the seed failed.
 */
import { api } from '../api.js';
import { fill, h, link } from '../dom.js';
import { elapsedSeconds, formatDuration, formatTime } from '../format.js';
import { OutputTail } from '../output.js';
import type { Operation } from '../types.js';
import { emptyRow, stateBadge } from '../view.js';

const COLUMNS = ['Step (operation)', 'Op', 'Agent', 'State', 'Exit', 'Started', 'Took', 'Outcome', ''];

export class SeedSteps {
  readonly root: HTMLElement;
  private readonly body = h('tbody');
  private readonly outputTitle = h('h3', { testid: 'step-output-title', hidden: true });
  private readonly output = new OutputTail('step-output');
  /** In the order the controller lists them (the order they ran); later steps arrive as events. */
  private readonly steps = new Map<string, Operation>();
  private chosen: string | null = null;
  /** Set once the user picks a step: a failed step no longer takes over the panel. */
  private pickedByUser = false;

  constructor(private readonly seedId: string) {
    this.output.root.hidden = true;
    this.root = h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Steps'),
      h('table', { testid: 'seed-steps' }, h('thead', {}, h('tr', {}, ...COLUMNS.map((t) => h('th', {}, t)))), this.body),
      this.outputTitle,
      this.output.root,
    );
  }

  async load(signal: AbortSignal): Promise<void> {
    const steps = await api.operations({ seed: this.seedId, limit: 1000 }, signal);
    this.steps.clear();
    for (const step of steps) this.steps.set(step.id, step);
    this.render();
    this.output.resync();
  }

  /** An `operation` event: a step of this seed started, progressed or ended. */
  upsert(op: Operation): void {
    if (typeof op?.id !== 'string' || op.seedId !== this.seedId) return;
    const known = this.steps.get(op.id);
    // An ended step never goes back to running (an older answer racing a newer event).
    this.steps.set(op.id, known && known.state !== 'running' && op.state === 'running' ? known : { ...known, ...op });
    this.render();
  }

  dispose(): void {
    this.output.dispose();
  }

  private show(id: string): void {
    this.chosen = id;
    this.outputTitle.hidden = false;
    fill(this.outputTitle, 'Output of ', link(`#/operations/${encodeURIComponent(id)}`, id));
    this.output.root.hidden = false;
    this.output.follow(id);
  }

  private render(): void {
    const steps = [...this.steps.values()];
    fill(this.body, steps.length > 0 ? steps.map((step) => this.renderRow(step)) : emptyRow(COLUMNS.length, 'No steps yet.'));
    if (!this.pickedByUser) {
      const failed = steps.find((s) => s.state === 'failed');
      if (failed && this.chosen !== failed.id) this.show(failed.id);
    }
  }

  private renderRow(step: Operation): HTMLTableRowElement {
    const outcome = step.error ? `${step.error.code}: ${step.error.message}` : '';
    const toggle = h('button', { type: 'button', class: 'link', testid: `step-show-${step.id}` }, this.chosen === step.id ? 'Showing output' : 'Show output');
    toggle.addEventListener('click', () => {
      this.pickedByUser = true;
      this.show(step.id);
      this.render();
    });
    return h(
      'tr',
      { testid: `step-row-${step.id}`, class: this.chosen === step.id ? 'current' : '' },
      h('td', { class: 'mono small' }, link(`#/operations/${encodeURIComponent(step.id)}`, step.id)),
      h('td', {}, step.op),
      h('td', {}, link(`#/agents/${encodeURIComponent(step.agentId)}`, step.agentId)),
      h('td', { testid: `step-state-${step.id}` }, stateBadge(step.state)),
      h('td', { class: 'num', testid: `step-exit-${step.id}` }, step.exitCode === null || step.exitCode === undefined ? '—' : String(step.exitCode)),
      h('td', { class: 'time' }, formatTime(step.createdAt)),
      h('td', { class: 'num' }, step.state === 'running' ? '…' : formatDuration(elapsedSeconds(step.createdAt, step.endedAt))),
      h('td', { class: step.error ? 'error small' : 'small' }, outcome),
      h('td', {}, toggle),
    );
  }
}
