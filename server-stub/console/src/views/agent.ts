/**
 * One agent: facts, peers, MySQL and snapshot actions, custom commands with live output, and its
 * recent operations. Sections redraw independently so a live update never wipes an input.
 */
import { api, describeError } from '../api.js';
import { fill, h, link, setOptions } from '../dom.js';
import { formatBool, formatBytes, formatTime } from '../format.js';
import { OutputTail } from '../output.js';
import { peerId, type Agent, type Operation, type PeerRef, type Snapshot } from '../types.js';
import { badge, emptyRow, errorLine, makeRefresher, stateBadge, type View, type ViewContext } from '../view.js';
import { OperationsTable } from './opsTable.js';

// The click handlers below `void` their promises: ctx.confirm, runAction and changeIdentity never
// reject (a refusal is shown in the action status), and their follow-ups only touch the page.
export function createAgentView(ctx: ViewContext, agentId: string): View {
  let agent: Agent | null = null;
  const error = errorLine();
  const header = h('div', { class: 'agent-header', testid: 'agent-header' });
  const factsEl = h('dl', { class: 'facts', testid: 'agent-facts' });
  const peersEl = h('div', { class: 'peers', testid: 'agent-peers' });
  const actionStatus = h('p', { class: 'action-status', testid: 'action-status', 'aria-live': 'polite' });

  // Identity: who may connect as this id (revoke disconnects it for good, readmit allows one enrollment)
  const identityEl = h('p', { testid: 'agent-identity' });
  const revokeButton = h('button', { type: 'button', class: 'danger', testid: 'agent-revoke' }, 'Revoke');
  const readmitButton = h('button', { type: 'button', class: 'secondary', testid: 'agent-readmit' }, 'Readmit');
  const identityNote = h('p', { class: 'muted small', testid: 'identity-note' });
  revokeButton.addEventListener('click', () => {
    void ctx
      .confirm({
        title: 'Revoke agent?',
        message: `Revoke ${agentId}? It is disconnected now and cannot reconnect, with its credential or the enrollment token, until it is readmitted.`,
        confirmLabel: 'Revoke',
        danger: true,
      })
      .then((ok) => (ok ? changeIdentity('revoke') : undefined));
  });
  readmitButton.addEventListener('click', () => {
    void ctx
      .confirm({ title: 'Readmit agent?', message: `Let ${agentId} enroll once more with the enrollment token? The first host to do so becomes ${agentId}.`, confirmLabel: 'Readmit', danger: false })
      .then((ok) => (ok ? changeIdentity('readmit') : undefined));
  });

  // MySQL
  const startButton = h('button', { type: 'button', testid: 'mysql-start' }, 'Start MySQL');
  const stopButton = h('button', { type: 'button', class: 'danger', testid: 'mysql-stop' }, 'Stop MySQL');
  const mysqlNote = h('p', { class: 'muted small', testid: 'mysql-note' });
  startButton.addEventListener('click', () => void runAction('mysql-start', {}));
  stopButton.addEventListener('click', () => {
    void ctx
      .confirm({ title: 'Stop MySQL?', message: `Stop MySQL on ${agentId}? Clients connected to it lose their connections.`, confirmLabel: 'Stop MySQL', danger: true })
      .then((ok) => (ok ? runAction('mysql-stop', {}) : undefined));
  });

  // Snapshots
  const snapshotBody = h('tbody', { testid: 'snapshots-body' });
  const snapshotName = h('input', { type: 'text', placeholder: 'name (optional)', pattern: '[A-Za-z0-9._-]+', testid: 'snapshot-name' });
  const createSnapshot = h('button', { type: 'button', testid: 'snapshot-create' }, 'Create snapshot');
  const unmountButton = h('button', { type: 'button', class: 'secondary', testid: 'snapshot-unmount' }, 'Unmount');
  const mountedEl = h('p', { class: 'muted', testid: 'snapshot-mounted' });
  createSnapshot.addEventListener('click', () => {
    const name = snapshotName.value.trim();
    void runAction('create-snapshot', name === '' ? {} : { name }).then((started) => {
      if (started) snapshotName.value = '';
    });
  });
  unmountButton.addEventListener('click', () => void runAction('unmount-snapshot', {}));

  // Custom commands
  const commandSelect = h('select', { testid: 'custom-command-select' });
  const runCommand = h('button', { type: 'button', testid: 'custom-command-run' }, 'Run');
  const commandOpState = h('span', { testid: 'custom-command-state' });
  const commandOpLink = h('span');
  const output = new OutputTail('op-output');
  const commandPanel = h('div', { class: 'command-output', hidden: true }, h('p', {}, commandOpLink, ' ', commandOpState), output.root);
  let commandOpId: string | null = null;
  runCommand.addEventListener('click', () => {
    const name = commandSelect.value;
    if (name === '') return;
    void runAction('custom-command', { name }).then((op) => {
      if (op) showCommandOperation(op);
    });
  });

  const ops = new OperationsTable({ showAgent: false, testid: 'agent-operations', filter: (op) => op.agentId === agentId });

  const root = h(
    'section',
    { class: 'view', testid: 'view-agent' },
    header,
    error,
    actionStatus,
    h('div', { class: 'columns' }, h('section', { class: 'card' }, h('h2', {}, 'Facts'), factsEl), h('section', { class: 'card' }, h('h2', {}, 'Peers'), peersEl)),
    h('section', { class: 'card' }, h('h2', {}, 'Identity'), identityEl, h('div', { class: 'actions' }, revokeButton, readmitButton), identityNote),
    h('section', { class: 'card' }, h('h2', {}, 'MySQL'), h('div', { class: 'actions' }, startButton, stopButton), mysqlNote),
    h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Snapshots'),
      mountedEl,
      h('table', { testid: 'snapshots-table' }, h('thead', {}, h('tr', {}, ...['Name', 'Created', 'Size', 'Mounted', ''].map((t) => h('th', {}, t)))), snapshotBody),
      h('div', { class: 'actions' }, snapshotName, createSnapshot, unmountButton),
    ),
    h('section', { class: 'card' }, h('h2', {}, 'Custom commands'), h('div', { class: 'actions' }, commandSelect, runCommand), commandPanel),
    h('section', { class: 'card' }, h('h2', {}, 'Recent operations'), ops.root),
  );

  /** Starts an operation without waiting; its progress arrives as `operation` events. */
  /** Never rejects: a refusal is shown in the action status and resolves null. */
  async function runAction(op: string, params: Record<string, unknown>): Promise<Operation | null> {
    actionStatus.className = 'action-status';
    actionStatus.textContent = `${op}: starting…`;
    try {
      const operation = await api.startOperation(agentId, op, params);
      ops.upsert(operation);
      describeOperation(ops.get(operation.id) ?? operation); // its end may already have been pushed
      return operation;
    } catch (err) {
      actionStatus.className = 'action-status error';
      actionStatus.textContent = `${op} refused: ${describeError(err)}`;
      return null;
    }
  }

  /** Never rejects: a refusal is shown in the action status. */
  async function changeIdentity(action: 'revoke' | 'readmit'): Promise<void> {
    actionStatus.className = 'action-status';
    try {
      const { identity } = action === 'revoke' ? await api.revokeAgent(agentId) : await api.readmitAgent(agentId);
      if (agent) agent = { ...agent, identity };
      render();
      actionStatus.textContent = action === 'revoke' ? `${agentId} revoked` : `${agentId} readmitted: it may enroll once`;
    } catch (err) {
      actionStatus.className = 'action-status error';
      actionStatus.textContent = `${action} refused: ${describeError(err)}`;
    }
  }

  function renderIdentity(a: Agent): void {
    const identity = a.identity;
    const state = identity?.state ?? 'unenrolled';
    const how = identity?.method === 'token' ? 'per-agent token' : identity?.method === 'certificate' ? 'client certificate' : identity?.method === 'credential' ? 'enrolled credential' : null;
    const since = state === 'revoked' ? identity?.revokedAt : state === 'readmitted' ? identity?.readmittedAt : identity?.enrolledAt;
    fill(identityEl, stateBadge(state, 'agent-identity-state'), how ? ` ${how}` : '', since ? ` · since ${formatTime(since)}` : '');
    revokeButton.disabled = state === 'revoked';
    readmitButton.disabled = state !== 'revoked';
    identityNote.textContent =
      state === 'revoked'
        ? 'Revoked: the agent cannot connect. Readmit lets it enroll again once.'
        : state === 'readmitted'
          ? 'Readmitted: the next connection with the enrollment token enrolls this id.'
          : '';
  }

  let lastActionOpId: string | null = null;
  function describeOperation(op: Operation): void {
    lastActionOpId = op.id;
    actionStatus.className = op.state === 'failed' ? 'action-status error' : 'action-status';
    const tail = op.error ? `: ${op.error.message}` : '';
    actionStatus.textContent = `${op.op} ${op.state}${tail}`;
  }

  function showCommandOperation(op: Operation): void {
    commandOpId = op.id;
    commandPanel.hidden = false;
    fill(commandOpLink, link(`#/operations/${encodeURIComponent(op.id)}`, `${String(op.params['name'] ?? op.op)} (${op.id})`, 'command-operation-link'));
    fill(commandOpState, stateBadge(op.state, 'custom-command-op-state'));
    output.follow(op.id);
  }

  function render(): void {
    if (!agent) return;
    const a = agent;
    const facts = a.facts ?? null;
    document.title = `seedwire — ${a.id}`;
    fill(
      header,
      h('h1', {}, a.id, ' ', a.connected ? badge('connected', 'ok', 'agent-connected') : badge('offline', 'off', 'agent-connected')),
      h('p', { class: 'muted' }, `${a.hostname} · datacenter ${a.datacenter ?? '—'} · agent ${a.version} · ${a.connected ? `connected ${formatTime(a.connectedAt)}` : `last seen ${formatTime(a.lastSeenAt)}`}`),
    );
    renderIdentity(a);
    const rows: [string, string, string][] = facts
      ? [
          ['MySQL', facts.mysqlConfigured === false ? 'not configured (no mysql section)' : formatBool(facts.mysqlRunning, 'running', 'stopped'), 'fact-mysql'],
          ['Port', facts.mysqlPort === null || facts.mysqlPort === undefined ? '—' : String(facts.mysqlPort), 'fact-port'],
          ['Datadir', facts.datadir ?? '—', 'fact-datadir'],
          ['Datadir used', formatBytes(facts.datadirBytes), 'fact-datadir-bytes'],
          ['Free space', formatBytes(facts.datadirFreeBytes), 'fact-datadir-free'],
          ['Snapshot backend', facts.snapshotBackend, 'fact-snapshot-backend'],
          ['Mounted', facts.mounted ? `${facts.mounted.name} at ${facts.mounted.mountPoint}` : 'nothing', 'fact-mounted'],
          ['Backup tool', facts.backupTool ?? '—', 'fact-backup-tool'],
          ['Incomplete seed', facts.incompleteSeed ?? 'none', 'fact-incomplete-seed'],
          ['Collected', formatTime(facts.collectedAt), 'fact-collected'],
        ]
      : [['Facts', 'not reported yet', 'fact-none']];
    fill(factsEl, rows.map(([k, v, id]) => [h('dt', {}, k), h('dd', { testid: id }, v)]));

    const peers = a.peers;
    fill(
      peersEl,
      h('h3', {}, 'Local (same datacenter)'),
      peerList(peers?.local ?? [], 'peers-local'),
      h('h3', {}, 'Remote'),
      peerList(peers?.remote ?? [], 'peers-remote'),
    );

    const connected = a.connected;
    const running = facts?.mysqlRunning;
    const mysqlOff = facts?.mysqlConfigured === false;
    startButton.disabled = !connected || mysqlOff || running === true;
    stopButton.disabled = !connected || mysqlOff || running === false;
    mysqlNote.textContent = !connected ? 'The agent is offline.' : mysqlOff ? 'This agent has no mysql section in its configuration.' : '';

    const snapshots = facts?.snapshots ?? [];
    fill(snapshotBody, snapshots.length > 0 ? snapshots.map((s) => renderSnapshot(s, connected)) : emptyRow(5, facts?.snapshotBackend === 'none' ? 'No snapshot backend configured.' : 'No snapshots.'));
    mountedEl.textContent = facts?.mounted ? `Mounted: ${facts.mounted.name} at ${facts.mounted.mountPoint}` : 'No snapshot mounted.';
    createSnapshot.disabled = !connected || !facts || facts.snapshotBackend === 'none';
    unmountButton.disabled = !connected || !facts?.mounted;

    const commands = facts?.customCommands ?? [];
    setOptions(commandSelect, [{ options: commands.length > 0 ? commands.map((c) => ({ value: c, text: c })) : [{ value: '', text: 'no custom commands configured', disabled: true }] }]);
    runCommand.disabled = !connected || commands.length === 0;
  }

  function renderSnapshot(s: Snapshot, connected: boolean): HTMLTableRowElement {
    const mount = h('button', { type: 'button', class: 'secondary', disabled: !connected || s.mounted, testid: `snapshot-mount-${s.name}` }, 'Mount');
    const remove = h('button', { type: 'button', class: 'danger', disabled: !connected || s.mounted, testid: `snapshot-remove-${s.name}` }, 'Remove');
    mount.addEventListener('click', () => void runAction('mount-snapshot', { name: s.name }));
    remove.addEventListener('click', () => {
      void ctx
        .confirm({ title: 'Remove snapshot?', message: `Remove snapshot ${s.name} on ${agentId}? This cannot be undone.`, confirmLabel: 'Remove', danger: true })
        .then((ok) => (ok ? runAction('remove-snapshot', { name: s.name }) : undefined));
    });
    return h(
      'tr',
      { testid: `snapshot-row-${s.name}` },
      h('td', { class: 'mono' }, s.name),
      h('td', { class: 'time' }, formatTime(s.createdAt)),
      h('td', { class: 'num' }, formatBytes(s.sizeBytes)),
      h('td', {}, s.mounted ? badge('mounted', 'ok') : 'no'),
      h('td', { class: 'actions' }, mount, remove),
    );
  }

  const refresh = makeRefresher(
    async () => {
      const [fresh, recent] = await Promise.all([api.agent(agentId, ctx.signal), api.operations({ agent: agentId, limit: 30 }, ctx.signal)]);
      agent = fresh;
      render();
      ops.replace(recent);
      // Events may have been missed (reconnect, gap): the last action's line follows the fetched state.
      const lastAction = lastActionOpId === null ? undefined : recent.find((op) => op.id === lastActionOpId);
      if (lastAction) describeOperation(lastAction);
      const current = commandOpId === null ? undefined : recent.find((op) => op.id === commandOpId);
      if (current) fill(commandOpState, stateBadge(current.state, 'custom-command-op-state'));
      output.resync();
    },
    error,
    ctx.signal,
  );

  return {
    title: agentId,
    root,
    refresh,
    onEvent(event) {
      if (event.type === 'agent') {
        const data = event.data as Agent;
        if (data?.id !== agentId) return;
        agent = { ...agent, ...data, facts: data.facts ?? agent?.facts ?? null, peers: data.peers ?? agent?.peers };
        render();
      } else if (event.type === 'operation') {
        const op = event.data as Operation;
        if (!ops.upsert(op)) return;
        if (op.id === commandOpId) fill(commandOpState, stateBadge(op.state, 'custom-command-op-state'));
        if (op.id === lastActionOpId) describeOperation(op);
      }
    },
    dispose() {
      output.dispose();
    },
  };
}

function peerList(peers: readonly PeerRef[], testid: string): HTMLElement {
  if (peers.length === 0) return h('p', { class: 'muted', testid }, 'none');
  return h(
    'ul',
    { testid },
    peers.map((peer) => {
      const id = peerId(peer);
      const offline = typeof peer === 'object' && peer.connected === false;
      return h('li', { testid: `peer-${id}` }, link(`#/agents/${encodeURIComponent(id)}`, id), offline ? h('span', { class: 'muted' }, ' (offline)') : null);
    }),
  );
}
