/** One seed: progress bar (bytes, percent, rate, ETA), stages, error, abort. */
import { api, describeError } from '../api.js';
import { describeThroughput, renderThroughputChart } from '../chart.js';
import { fill, h, link } from '../dom.js';
import { elapsedSeconds, formatBytes, formatDuration, formatPercent, formatRate, formatTime } from '../format.js';
import type { Operation, Seed, ThroughputView } from '../types.js';
import { errorLine, makeRefresher, stateBadge, type View, type ViewContext } from '../view.js';
import { SeedSteps } from './seedSteps.js';

const ACTIVE = new Set(['pending', 'running']);
/** The chart is re-fetched at most this often on seed events, and at least this often while the seed runs. */
const CHART_MIN_MS = 1_000;
const CHART_POLL_MS = 3_000;

export function createSeedView(ctx: ViewContext, seedId: string): View {
  let seed: Seed | null = null;
  let throughput: ThroughputView | null = null;
  const chartHolder = h('div', { class: 'chart-holder', testid: 'throughput' });
  const chartCaption = h('p', { class: 'muted small', testid: 'throughput-caption' });
  const error = errorLine();
  const title = h('h1', {}, 'Seed ', seedId);
  const summary = h('p', { class: 'muted', testid: 'seed-summary' });
  const progress = h('progress', { testid: 'seed-progress', max: 1, value: 0 });
  const progressText = h('p', { testid: 'seed-progress-text' });
  const seedError = h('p', { class: 'error', testid: 'seed-error', hidden: true, role: 'alert' });
  const stagesBody = h('tbody');
  const abort = h('button', { type: 'button', class: 'danger', testid: 'seed-abort', hidden: true }, 'Abort seed');
  const abortError = h('p', { class: 'error', testid: 'seed-abort-error', hidden: true });
  const steps = new SeedSteps(seedId);

  abort.addEventListener('click', () => {
    // Safe to void: confirm never rejects and the follow-up catches its own failure.
    void ctx
      .confirm({ title: 'Abort seed?', message: `Abort seed ${seedId}? Both sides stop and the target's partial data is removed; the target keeps its incomplete marker.`, confirmLabel: 'Abort seed', danger: true })
      .then(async (ok) => {
        if (!ok) return;
        try {
          await api.abortSeed(seedId);
          abortError.hidden = true;
        } catch (err) {
          abortError.textContent = `Abort failed: ${describeError(err)}`;
          abortError.hidden = false;
        }
      });
  });

  const root = h(
    'section',
    { class: 'view', testid: 'view-seed' },
    title,
    summary,
    error,
    h('section', { class: 'card' }, h('div', { class: 'progress-row' }, progress), progressText, seedError, h('div', { class: 'actions' }, abort), abortError),
    h('section', { class: 'card' }, h('h2', {}, 'Throughput'), chartHolder, chartCaption),
    h('section', { class: 'card' }, h('h2', {}, 'Stages'), h('table', { testid: 'seed-stages' }, h('thead', {}, h('tr', {}, ...['Stage', 'State', 'Started', 'Ended', 'Took', 'Message'].map((t) => h('th', {}, t)))), stagesBody)),
    steps.root,
  );

  function render(): void {
    const s = seed;
    if (!s) return;
    fill(title, 'Seed ', s.id, ' ', stateBadge(s.state, 'seed-state'));
    fill(
      summary,
      link(`#/agents/${encodeURIComponent(s.source)}`, s.source),
      ' → ',
      link(`#/agents/${encodeURIComponent(s.target)}`, s.target),
      ` · method ${s.method} · compression ${s.effectiveCompression ?? s.compression}${s.lanes > 1 ? ` · ${s.lanes} lanes` : ''}${s.attempts && s.attempts > 1 ? ` · ${s.attempts} attempts` : ''} · started ${formatTime(s.createdAt)}${s.endedAt ? ` · ended ${formatTime(s.endedAt)}` : ''}`,
    );
    const total = s.bytesTotal;
    if (total !== null && total > 0) {
      progress.max = total;
      progress.value = Math.min(s.bytesDone, total);
    } else if (s.state === 'succeeded') {
      progress.max = 1;
      progress.value = 1;
    } else {
      progress.removeAttribute('value'); // indeterminate until the total is known
    }
    progress.dataset['percent'] = total !== null && total > 0 ? String(Math.min(100, (s.bytesDone / total) * 100)) : '';
    const active = ACTIVE.has(s.state);
    const parts = [
      `${formatBytes(s.bytesDone)} of ${total === null ? 'unknown' : formatBytes(total)}`,
      formatPercent(s.bytesDone, total),
      active ? (s.bytesPerSec === null ? 'rate —' : formatRate(s.bytesPerSec)) : `average ${formatRate(averageRate(s))}`,
      active ? `ETA ${formatDuration(s.etaSeconds)}` : `took ${formatDuration(elapsedSeconds(s.createdAt, s.endedAt))}`,
    ];
    progressText.textContent = parts.join(' · ');
    seedError.hidden = s.error === null;
    seedError.textContent = s.error ? `${s.error.code}: ${s.error.message}` : '';
    abort.hidden = !active;

    fill(
      stagesBody,
      s.stages.map((st) =>
        h(
          'tr',
          { testid: `stage-${st.name}`, class: st.name === s.stage && active ? 'current' : '' },
          h('td', {}, st.name),
          h('td', { testid: `stage-state-${st.name}` }, stateBadge(st.state)),
          h('td', { class: 'time' }, formatTime(st.startedAt)),
          h('td', { class: 'time' }, formatTime(st.endedAt)),
          h('td', { class: 'num' }, st.startedAt ? formatDuration(elapsedSeconds(st.startedAt, st.endedAt)) : '—'),
          h('td', { class: 'small' }, st.message ?? ''),
        ),
      ),
    );
  }

  function renderChart(): void {
    if (!throughput) return;
    fill(chartHolder, renderThroughputChart(throughput, Date.now()));
    chartCaption.textContent = describeThroughput(throughput);
  }

  const refresh = makeRefresher(
    async () => {
      const [s, t] = await Promise.all([api.seed(seedId, ctx.signal), api.throughput(seedId, ctx.signal), steps.load(ctx.signal)]);
      seed = s;
      throughput = t;
      render();
      renderChart();
    },
    error,
    ctx.signal,
  );

  // The chart follows the seed: re-fetched on its events (at most once a second), and every few
  // seconds while it runs, since stages without transfer send few events.
  let chartFetchedAt = 0;
  let chartTimer: ReturnType<typeof setTimeout> | null = null;
  const refreshChart = makeRefresher(
    async () => {
      chartFetchedAt = Date.now();
      throughput = await api.throughput(seedId, ctx.signal);
      renderChart();
    },
    error,
    ctx.signal,
  );
  function scheduleChart(delayMs: number): void {
    if (chartTimer !== null || ctx.signal.aborted) return;
    chartTimer = setTimeout(() => {
      chartTimer = null;
      // A refresher never rejects (its failure is shown on the page).
      void refreshChart().finally(() => {
        if (seed && ACTIVE.has(seed.state)) scheduleChart(CHART_POLL_MS);
      });
    }, delayMs);
  }
  scheduleChart(CHART_POLL_MS);
  ctx.signal.addEventListener('abort', () => {
    if (chartTimer !== null) clearTimeout(chartTimer);
    chartTimer = null;
  });

  return {
    title: `Seed ${seedId}`,
    root,
    refresh,
    onEvent(event) {
      if (event.type === 'operation') steps.upsert(event.data as Operation);
      if (event.type !== 'seed') return;
      const data = event.data as Seed;
      if (data?.id !== seedId) return;
      seed = { ...seed, ...data, stages: data.stages ?? seed?.stages ?? [] };
      render();
      if (chartTimer !== null) clearTimeout(chartTimer);
      chartTimer = null;
      scheduleChart(Math.max(0, CHART_MIN_MS - (Date.now() - chartFetchedAt)));
    },
    dispose() {
      steps.dispose();
    },
  };
}

function averageRate(s: Seed): number | null {
  const seconds = elapsedSeconds(s.createdAt, s.endedAt);
  return seconds && seconds > 0 ? s.bytesDone / seconds : null;
}
