/** One modal confirm dialog (native <dialog>), shared by every view. */
import { h } from './dom.js';
import type { ConfirmOptions } from './view.js';

export function createConfirm(host: HTMLElement): (options: ConfirmOptions) => Promise<boolean> {
  const title = h('h2', { testid: 'confirm-title' });
  const message = h('p', { testid: 'confirm-message' });
  const ok = h('button', { type: 'submit', value: 'ok', testid: 'confirm-ok' });
  const cancel = h('button', { type: 'submit', value: 'cancel', class: 'secondary', testid: 'confirm-cancel' }, 'Cancel');
  const form = h('form', { method: 'dialog' }, title, message, h('div', { class: 'actions' }, cancel, ok));
  const dialog = h('dialog', { testid: 'confirm-dialog' }, form);
  host.appendChild(dialog);
  let pending: ((value: boolean) => void) | null = null;
  dialog.addEventListener('close', () => {
    const resolve = pending;
    pending = null;
    resolve?.(dialog.returnValue === 'ok');
  });

  return (options) => {
    if (pending) pending(false);
    title.textContent = options.title;
    message.textContent = options.message;
    ok.textContent = options.confirmLabel;
    ok.className = options.danger ? 'danger' : '';
    dialog.returnValue = '';
    return new Promise<boolean>((resolve) => {
      pending = resolve;
      dialog.showModal();
      cancel.focus();
    });
  };
}
