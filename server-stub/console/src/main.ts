/**
 * The console's shell: top navigation, connection banner, hash routing, and the one live event
 * stream that feeds whichever view is shown. A 401 anywhere ends the session and shows Login.
 */
import { api, setUnauthorizedHandler } from './api.js';
import { createConfirm } from './dialog.js';
import { fill, h } from './dom.js';
import { LiveConnection, type LiveStatus } from './live.js';
import { parseRoute, sectionOf, type Route } from './router.js';
import { MountedView, type View, type ViewContext } from './view.js';
import { createAgentView } from './views/agent.js';
import { createAgentsView } from './views/agents.js';
import { createAuditView } from './views/audit.js';
import { createLoginView } from './views/login.js';
import { createNewSeedView } from './views/newSeed.js';
import { createOperationView } from './views/operation.js';
import { createOperationsView } from './views/operations.js';
import { createSeedView } from './views/seed.js';
import { createSeedsView } from './views/seeds.js';

const DEFAULT_HASH = '#/agents';

function start(): void {
  const app = document.getElementById('app');
  const banner = document.getElementById('connection-banner');
  const nav = document.getElementById('nav');
  if (!app || !banner || !nav) throw new Error('index.html is missing #app, #nav or #connection-banner');

  const confirm = createConfirm(document.body);
  // Shown when the controller reports a gap (this viewer fell behind and lost live events): the
  // page is re-fetched, and the user is told, rather than silently missing updates.
  const gapText = h('span', { testid: 'gap-notice-text' });
  const gapDismiss = h('button', { type: 'button', class: 'link', testid: 'gap-notice-dismiss' }, 'Dismiss');
  const gapNotice = h('div', { class: 'banner', testid: 'gap-notice', role: 'status', hidden: true }, gapText, ' ', gapDismiss);
  gapDismiss.style.color = 'inherit'; // CSSOM, allowed by the CSP (no inline style attributes)
  gapDismiss.style.textDecoration = 'underline';
  gapDismiss.addEventListener('click', () => {
    gapNotice.hidden = true;
  });
  banner.after(gapNotice);
  let gapCount = 0;
  function showGap(reason: 'gap' | 'restart', missed: { from: number; to: number } | undefined): void {
    gapCount++;
    const times = gapCount > 1 ? ` (${gapCount} times)` : '';
    if (reason === 'restart') {
      gapText.textContent = `The controller restarted while this page was disconnected; what it did just before stopping may not have been shown live. The page was reloaded from the controller${times}.`;
    } else {
      const events = missed ? missed.to - missed.from + 1 : null;
      gapText.textContent = `Live updates fell behind: ${events !== null && events > 0 ? `${events} event${events === 1 ? '' : 's'}` : 'some events'} missed${missed ? ` (#${missed.from}–#${missed.to})` : ''}; the page was reloaded from the controller${times}.`;
    }
    gapNotice.dataset['reason'] = reason;
    gapNotice.dataset['from'] = missed ? String(missed.from) : '';
    gapNotice.dataset['to'] = missed ? String(missed.to) : '';
    gapNotice.hidden = false;
  }
  let current: { view: MountedView; controller: AbortController } | null = null;
  let returnTo = DEFAULT_HASH;

  const live = new LiveConnection('/api/events/ws', {
    onEvent: (event) => current?.view.onEvent(event),
    onResync: (reason, missed) => {
      if (reason !== 'open') showGap(reason, missed);
      void current?.view.refresh();
    },
    onStatus: showStatus,
    onCursor: (epoch, seq) => {
      // For diagnostics and tests: where the feed would resume from.
      document.body.dataset['liveEpoch'] = epoch;
      document.body.dataset['liveSeq'] = String(seq);
    },
  });

  function showStatus(status: LiveStatus): void {
    banner!.hidden = status !== 'reconnecting';
    banner!.dataset['status'] = status;
    banner!.textContent = status === 'reconnecting' ? 'Connection to the controller lost — reconnecting…' : '';
  }

  setUnauthorizedHandler(() => {
    live.stop();
    if (parseRoute(location.hash).name !== 'login') {
      returnTo = location.hash && parseRoute(location.hash).name !== 'not-found' ? location.hash : DEFAULT_HASH;
      location.hash = '#/login';
    }
  });

  const links = (['agents', 'operations', 'seeds', 'audit'] as const).map((section) =>
    h('a', { href: `#/${section}`, 'data-section': section, testid: `nav-${section}` }, section === 'audit' ? 'Audit log' : section[0]!.toUpperCase() + section.slice(1)),
  );
  const logout = h('button', { type: 'button', class: 'link', testid: 'nav-logout' }, 'Log out');
  logout.addEventListener('click', () => {
    live.stop();
    // Failing or not, the user asked to leave: the login page is shown either way.
    void api
      .logout()
      .catch(() => undefined)
      .finally(() => {
        returnTo = DEFAULT_HASH;
        location.hash = '#/login';
      });
  });
  fill(nav, h('span', { class: 'brand' }, 'seedwire'), ...links, h('span', { class: 'spacer' }), logout);

  function createView(route: Route, ctx: ViewContext): View {
    switch (route.name) {
      case 'login':
        return createLoginView(ctx, () => returnTo);
      case 'agents':
        return createAgentsView(ctx);
      case 'agent':
        return createAgentView(ctx, route.id);
      case 'operations':
        return createOperationsView(ctx);
      case 'operation':
        return createOperationView(ctx, route.id);
      case 'seeds':
        return createSeedsView(ctx);
      case 'new-seed':
        return createNewSeedView(ctx, route);
      case 'seed':
        return createSeedView(ctx, route.id);
      case 'audit':
        return createAuditView(ctx);
      case 'not-found':
        return {
          title: 'Not found',
          root: h('section', { class: 'view', testid: 'view-not-found' }, h('h1', {}, 'Not found'), h('p', {}, 'No page at ', route.hash, '. '), h('a', { href: DEFAULT_HASH }, 'Agents')),
          refresh: async () => {},
        };
    }
  }

  function show(): void {
    const route = parseRoute(location.hash);
    if (current) {
      current.controller.abort();
      current.view.view.dispose?.();
    }
    const controller = new AbortController();
    const ctx: ViewContext = {
      navigate: (hash) => {
        location.hash = hash;
      },
      confirm,
      signal: controller.signal,
    };
    const view = new MountedView(createView(route, ctx));
    current = { view, controller };
    document.title = `seedwire — ${view.view.title}`;
    const section = sectionOf(route);
    for (const a of links) a.classList.toggle('active', a.dataset['section'] === section);
    nav!.hidden = route.name === 'login';
    fill(app!, view.view.root);
    if (route.name === 'login') {
      live.stop();
      gapNotice.hidden = true;
      void view.refresh();
    } else if (!live.running) {
      live.start(); // its first open triggers the view's refresh
      void view.refresh();
    } else {
      void view.refresh();
    }
  }

  window.addEventListener('hashchange', show);
  if (location.hash === '' || location.hash === '#') history.replaceState(null, '', DEFAULT_HASH);
  show();
}

start();
