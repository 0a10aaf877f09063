/** What every page of the console implements, and what the shell gives it. */
import { describeError } from './api.js';
import { h } from './dom.js';
import type { LiveEvent } from './types.js';

export interface View {
  readonly title: string;
  readonly root: HTMLElement;
  /**
   * Fetches the view's data and redraws it; called on mount and on every resync. Never rejects
   * (a failure is shown in the view), so the shell calls it with `void`.
   */
  refresh(): Promise<void>;
  onEvent?(event: LiveEvent): void;
  dispose?(): void;
}

export interface ViewContext {
  navigate(hash: string): void;
  /** Resolves true when confirmed, false when dismissed; never rejects. */
  confirm(options: ConfirmOptions): Promise<boolean>;
  /** Aborted when the view is left: pass to every fetch. */
  signal: AbortSignal;
}

export interface ConfirmOptions {
  title: string;
  message: string;
  confirmLabel: string;
  danger?: boolean;
}

/** Events kept while a refresh runs; past this many, the view is simply fetched again. */
const MAX_HELD_EVENTS = 5_000;

/**
 * A view as the shell drives it. A refresh's answer can be older than an event that arrives while
 * it is in flight (the controller read its store before the event's change was committed): applied
 * last, it would undo that event (an ended operation shown as running, with no event to come).
 * So the events that arrive during a refresh are applied again, in order, once it is done; every
 * event carries the whole row, so applying one twice changes nothing.
 */
export class MountedView {
  private loading = 0;
  private held: LiveEvent[] = [];
  private overflowed = false;

  constructor(readonly view: View) {}

  onEvent(event: LiveEvent): void {
    if (this.loading > 0) {
      if (this.held.length < MAX_HELD_EVENTS) this.held.push(event);
      else this.overflowed = true;
    }
    this.view.onEvent?.(event);
  }

  async refresh(): Promise<void> {
    this.loading++;
    // For diagnostics and tests: loads of the current view in flight (main.ts sets the feed's cursor likewise).
    document.body.dataset['viewLoading'] = String(this.loading);
    try {
      await this.view.refresh();
    } finally {
      this.loading--;
      document.body.dataset['viewLoading'] = String(this.loading);
    }
    if (this.loading > 0) return; // the last refresh to end replays
    const held = this.held;
    const overflowed = this.overflowed;
    this.held = [];
    this.overflowed = false;
    if (overflowed) return this.refresh();
    for (const event of held) this.view.onEvent?.(event);
  }
}

/**
 * Wraps a view's loader so overlapping calls coalesce: while one load runs, further calls
 * queue exactly one more run. Errors are shown in `errorEl` (the last good data stays), so the
 * returned function never rejects.
 */
export function makeRefresher(load: () => Promise<void>, errorEl: HTMLElement, signal: AbortSignal): () => Promise<void> {
  let running: Promise<void> | null = null;
  let again = false;
  const runOnce = async (): Promise<void> => {
    try {
      await load();
      errorEl.hidden = true;
      errorEl.textContent = '';
    } catch (err) {
      if (signal.aborted) return;
      errorEl.hidden = false;
      errorEl.textContent = `Could not load: ${describeError(err)}`;
    }
  };
  return async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await runOnce();
      } while (again && !signal.aborted);
    })().finally(() => {
      running = null;
    });
    return running;
  };
}

export function errorLine(testid = 'view-error'): HTMLParagraphElement {
  return h('p', { class: 'error', testid, hidden: true, role: 'alert' });
}

export function badge(text: string, kind: string, testid?: string): HTMLSpanElement {
  return h('span', { class: `badge badge-${kind}`, testid }, text);
}

/** CSS modifier for a state word (running, succeeded, failed, ...). */
export function stateBadge(state: string, testid?: string): HTMLSpanElement {
  return badge(state, state.replace(/[^a-z-]/g, ''), testid);
}

export function emptyRow(columns: number, text: string): HTMLTableRowElement {
  return h('tr', { class: 'empty' }, h('td', { colspan: columns }, text));
}
