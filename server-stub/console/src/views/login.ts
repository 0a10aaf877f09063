/** Login: the admin token goes to POST /api/login once; the controller answers with an HttpOnly cookie. */
import { ApiError, api, describeError } from '../api.js';
import { h } from '../dom.js';
import type { View, ViewContext } from '../view.js';

export function createLoginView(ctx: ViewContext, afterLogin: () => string): View {
  const token = h('input', { type: 'password', id: 'login-token', name: 'token', autocomplete: 'current-password', required: true, testid: 'login-token' });
  const submit = h('button', { type: 'submit', testid: 'login-submit' }, 'Log in');
  const error = h('p', { class: 'error', testid: 'login-error', hidden: true, role: 'alert' });
  const form = h(
    'form',
    { class: 'login', novalidate: true },
    h('h1', {}, 'seedwire'),
    h('label', { for: 'login-token' }, 'Admin token'),
    token,
    submit,
    error,
    h('p', { class: 'muted' }, 'The token is exchanged for a session cookie; the console does not keep it.'),
  );

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = token.value.trim();
    if (value === '') {
      showError('Enter the admin token.');
      return;
    }
    submit.disabled = true;
    error.hidden = true;
    api
      .login(value)
      .then(() => {
        token.value = '';
        ctx.navigate(afterLogin());
      })
      .catch((err: unknown) => {
        showError(err instanceof ApiError && err.status === 401 ? 'Wrong token.' : `Login failed: ${describeError(err)}`);
      })
      .finally(() => {
        submit.disabled = false;
      });
  });

  function showError(message: string): void {
    error.textContent = message;
    error.hidden = false;
  }

  const root = h('section', { class: 'view view-login', testid: 'view-login' }, form);
  return {
    title: 'Log in',
    root,
    refresh: async () => {
      token.focus();
    },
  };
}
