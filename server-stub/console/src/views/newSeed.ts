/**
 * New seed: pick a source, then a target from the source's peers grouped as local (same
 * datacenter) and remote, as orchestrator did; the locality is shown before confirming.
 */
import { api, describeError } from '../api.js';
import { h, setOptions } from '../dom.js';
import { formatBytes } from '../format.js';
import { COMPRESSIONS, SEED_METHODS, peerId, type Agent } from '../types.js';
import { errorLine, makeRefresher, type View, type ViewContext } from '../view.js';

export type Locality = 'local' | 'remote';

export function createNewSeedView(ctx: ViewContext, preset: { source?: string; target?: string }): View {
  const agents = new Map<string, Agent>();
  let sourceDetail: Agent | null = null;
  const error = errorLine();
  const source = h('select', { id: 'new-seed-source', required: true, testid: 'new-seed-source' });
  const target = h('select', { id: 'new-seed-target', required: true, testid: 'new-seed-target' });
  const method = h('select', { id: 'new-seed-method', testid: 'new-seed-method' });
  const compression = h('select', { id: 'new-seed-compression', testid: 'new-seed-compression' });
  // Checked by default, as the API defaults startTarget to true.
  const startTarget = h('input', { type: 'checkbox', id: 'new-seed-start-target', checked: true, testid: 'new-seed-start-target' });
  // Optional bandwidth cap in MiB/s (empty: no cap); sent as maxBytesPerSec (the API's minimum is 64 KiB/s).
  const maxRate = h('input', { type: 'number', id: 'new-seed-max-rate', min: '0.0625', step: 'any', placeholder: 'no limit', inputmode: 'decimal', testid: 'new-seed-max-rate' });
  const locality = h('p', { class: 'locality', testid: 'new-seed-locality', 'aria-live': 'polite' });
  const submitError = h('p', { class: 'error', testid: 'new-seed-error', hidden: true, role: 'alert' });
  const submit = h('button', { type: 'submit', testid: 'new-seed-submit' }, 'Seed…');
  setOptions(method, [{ options: [{ value: '', text: 'default (snapshot if available, else cold)' }, ...SEED_METHODS.map((m) => ({ value: m, text: m }))] }]);
  setOptions(compression, [{ options: [{ value: '', text: 'auto' }, ...COMPRESSIONS.map((c) => ({ value: c, text: c }))] }]);

  const form = h(
    'form',
    { class: 'new-seed card', testid: 'new-seed-form', novalidate: true },
    field('Source (copied from)', source),
    field('Target (overwritten)', target),
    locality,
    field('Method', method),
    field('Compression', compression),
    field('Bandwidth limit (MiB/s)', maxRate),
    h('label', { class: 'check' }, startTarget, ' Start MySQL on the target when done'),
    h('div', { class: 'actions' }, submit),
    submitError,
  );
  const root = h('section', { class: 'view', testid: 'view-new-seed' }, h('h1', {}, 'New seed'), error, form);

  function agentLabel(a: Agent): string {
    const facts = a.facts;
    const size = facts?.datadirBytes !== null && facts?.datadirBytes !== undefined ? ` · ${formatBytes(facts.datadirBytes)}` : '';
    return `${a.id} (${a.datacenter ?? 'no datacenter'}${a.connected ? '' : ', offline'}${size})`;
  }

  /** Where `targetId` sits relative to the source: the controller's peers first, then datacenters. */
  function localityOf(targetId: string): Locality | null {
    const peers = sourceDetail?.id === source.value ? sourceDetail.peers : undefined;
    if (peers?.local.some((p) => peerId(p) === targetId)) return 'local';
    if (peers?.remote.some((p) => peerId(p) === targetId)) return 'remote';
    const s = agents.get(source.value);
    const t = agents.get(targetId);
    if (!s || !t || s.datacenter === null || t.datacenter === null) return null;
    return s.datacenter === t.datacenter ? 'local' : 'remote';
  }

  function renderPickers(): void {
    const all = [...agents.values()].sort((a, b) => a.id.localeCompare(b.id));
    setOptions(source, [{ options: [{ value: '', text: 'choose the source…' }, ...all.map((a) => ({ value: a.id, text: agentLabel(a), disabled: !a.connected }))] }]);
    const candidates = all.filter((a) => a.id !== source.value);
    const local = candidates.filter((a) => localityOf(a.id) === 'local');
    const remote = candidates.filter((a) => localityOf(a.id) === 'remote');
    const unknown = candidates.filter((a) => localityOf(a.id) === null);
    const dc = agents.get(source.value)?.datacenter;
    const toOption = (a: Agent) => ({ value: a.id, text: agentLabel(a), disabled: !a.connected });
    setOptions(target, [
      { options: [{ value: '', text: source.value === '' ? 'choose the source first' : 'choose the target…' }] },
      ...(local.length > 0 ? [{ label: `Local${dc ? ` (datacenter ${dc})` : ''}`, options: local.map(toOption) }] : []),
      ...(remote.length > 0 ? [{ label: 'Remote (other datacenters)', options: remote.map(toOption) }] : []),
      ...(unknown.length > 0 ? [{ label: 'Datacenter unknown', options: unknown.map(toOption) }] : []),
    ]);
    target.disabled = source.value === '';
    renderLocality();
  }

  function describeChoice(): string | null {
    const s = agents.get(source.value);
    const t = agents.get(target.value);
    if (!s || !t) return null;
    const where = localityOf(t.id);
    const place = where === 'local' ? `local: same datacenter ${s.datacenter ?? ''}`.trim() : where === 'remote' ? `remote: ${t.datacenter ?? '?'} ← ${s.datacenter ?? '?'}` : 'datacenter unknown';
    return `${t.id} will be seeded from ${s.id} (${place})`;
  }

  function renderLocality(): void {
    const text = describeChoice();
    const where = agents.has(target.value) ? localityOf(target.value) : null;
    locality.textContent = text ?? '';
    locality.dataset['locality'] = where ?? '';
    locality.hidden = text === null;
    const methodFacts = agents.get(source.value)?.facts;
    method.options[0]!.text = methodFacts ? `default (${methodFacts.snapshotBackend !== 'none' ? 'snapshot' : 'cold'})` : 'default (snapshot if available, else cold)';
  }

  source.addEventListener('change', () => {
    sourceDetail = null;
    renderPickers();
    const id = source.value;
    if (id === '') return;
    api
      .agent(id, ctx.signal)
      .then((detail) => {
        if (source.value !== id) return;
        sourceDetail = detail;
        agents.set(id, { ...agents.get(id), ...detail });
        renderPickers();
      })
      .catch(() => undefined); // the datacenter fallback still works
  });
  target.addEventListener('change', renderLocality);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitError.hidden = true;
    const summary = describeChoice();
    if (summary === null) {
      submitError.textContent = 'Choose a source and a target.';
      submitError.hidden = false;
      return;
    }
    const rateText = maxRate.value.trim();
    const maxBytesPerSec = rateText === '' ? null : Math.round(Number(rateText) * 1024 * 1024);
    if (maxBytesPerSec !== null && !(Number.isFinite(maxBytesPerSec) && maxBytesPerSec >= 65_536)) {
      submitError.textContent = 'Bandwidth limit: a number of MiB/s, at least 0.0625 (64 KiB/s), or empty for no limit.';
      submitError.hidden = false;
      return;
    }
    const body = {
      source: source.value,
      target: target.value,
      ...(method.value !== '' ? { method: method.value } : {}),
      ...(compression.value !== '' ? { compression: compression.value } : {}),
      startTarget: startTarget.checked,
      ...(maxBytesPerSec !== null ? { maxBytesPerSec } : {}),
    };
    const details = `Method ${body.method ?? 'default'}, compression ${body.compression ?? 'auto'}${maxBytesPerSec !== null ? `, at most ${rateText} MiB/s` : ''}; MySQL on the target ${body.startTarget ? 'is started' : 'stays stopped'} afterwards.`;
    // Safe to void: confirm never rejects and the follow-up catches its own failure.
    void ctx
      .confirm({ title: 'Start seed?', message: `${summary}. Everything in ${body.target}'s datadir is replaced. ${details}`, confirmLabel: 'Start seed', danger: true })
      .then(async (ok) => {
        if (!ok) return;
        submit.disabled = true;
        try {
          const seed = await api.createSeed(body);
          ctx.navigate(`#/seeds/${encodeURIComponent(seed.id)}`);
        } catch (err) {
          submitError.textContent = `Seed refused: ${describeError(err)}`;
          submitError.hidden = false;
        } finally {
          submit.disabled = false;
        }
      });
  });

  let presetApplied = false;
  const refresh = makeRefresher(
    async () => {
      const list = await api.agents(ctx.signal);
      for (const a of list) agents.set(a.id, { ...agents.get(a.id), ...a });
      for (const id of agents.keys()) if (!list.some((a) => a.id === id)) agents.delete(id);
      renderPickers();
      if (!presetApplied) {
        presetApplied = true;
        if (preset.source && agents.has(preset.source)) {
          source.value = preset.source;
          source.dispatchEvent(new Event('change'));
        }
        if (preset.target && agents.has(preset.target)) {
          renderPickers();
          target.value = preset.target;
          renderLocality();
        }
      }
    },
    error,
    ctx.signal,
  );

  return {
    title: 'New seed',
    root,
    refresh,
    onEvent(event) {
      if (event.type !== 'agent') return;
      const a = event.data as Agent;
      if (typeof a?.id !== 'string') return;
      agents.set(a.id, { ...agents.get(a.id), ...a });
      if (a.id === sourceDetail?.id && a.peers) sourceDetail = { ...sourceDetail, peers: a.peers };
      renderPickers();
    },
  };
}

function field(label: string, control: HTMLElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}
