/**
 * Live output of one operation: reads GET /api/operations/:id/output, which streams the whole
 * output from the start and ends when the operation ends. Following the stream rather than
 * `output` events means no chunk can be lost or doubled between a snapshot and the events.
 * If the stream breaks (controller restart), `resync()` re-reads it from the start.
 */
import { api, describeError } from './api.js';
import { h } from './dom.js';

/** Characters kept on screen; older output is dropped (the full text stays on the controller). */
const MAX_CHARS = 256 * 1024;

export class OutputTail {
  readonly root: HTMLElement;
  private readonly pre: HTMLPreElement;
  private readonly status: HTMLElement;
  private operationId: string | null = null;
  private controller: AbortController | null = null;
  private phase: 'idle' | 'reading' | 'ended' | 'broken' = 'idle';
  private trimmed = false;

  constructor(testid = 'op-output') {
    this.pre = h('pre', { class: 'output', testid, 'aria-live': 'polite' });
    this.status = h('p', { class: 'muted', testid: `${testid}-status` });
    this.root = h('div', { class: 'output-wrap' }, this.pre, this.status);
  }

  get following(): string | null {
    return this.operationId;
  }

  follow(operationId: string): void {
    if (this.operationId === operationId && (this.phase === 'reading' || this.phase === 'ended')) return;
    this.operationId = operationId;
    void this.read();
  }

  /** After a reconnect or a gap: re-read a stream that broke; leave a healthy one alone. */
  resync(): void {
    if (this.operationId !== null && this.phase === 'broken') void this.read();
  }

  dispose(): void {
    this.controller?.abort();
    this.controller = null;
    this.operationId = null;
    this.phase = 'idle';
  }

  /** Never rejects: a failure is shown in the status line (and retried by resync), so callers `void` it. */
  private async read(): Promise<void> {
    const id = this.operationId;
    if (id === null) return;
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.phase = 'reading';
    this.setText('');
    this.status.textContent = 'following output…';
    try {
      const response = await api.followOutput(id, controller.signal);
      if (!response.body) throw new Error('no output stream');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (this.controller === controller) this.appendText(value);
      }
      if (this.controller !== controller) return;
      // The stream also ends cleanly when the controller shuts down: only a finished
      // operation means the output is complete.
      const operation = await api.operation(id, controller.signal);
      if (this.controller !== controller) return;
      if (operation.state === 'running') throw new Error('the output stream closed early');
      this.phase = 'ended';
      this.status.textContent = `${this.pre.textContent === '' ? 'no output' : 'end of output'} (${operation.state})`;
    } catch (err) {
      if (controller.signal.aborted || this.controller !== controller) return;
      this.phase = 'broken';
      this.status.textContent = `output interrupted: ${describeError(err)}; will resume on reconnect`;
    }
  }

  private setText(text: string): void {
    this.trimmed = false;
    this.pre.textContent = text;
  }

  private appendText(chunk: string): void {
    const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    let text = (this.pre.textContent ?? '') + chunk;
    if (text.length > MAX_CHARS) {
      text = text.slice(text.length - MAX_CHARS);
      this.trimmed = true;
    }
    this.pre.textContent = text;
    this.pre.title = this.trimmed ? 'earlier output trimmed' : '';
    if (atBottom) this.pre.scrollTop = this.pre.scrollHeight;
  }
}
