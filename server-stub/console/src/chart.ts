/**
 * A seed's throughput chart as inline SVG: the rate per interval as a line over a shaded area,
 * a band per stage, and vertical marks for transfer attempts (resumes) and controller restarts.
 * Built with createElementNS and attributes only (no innerHTML, no style attributes), so it
 * lives within the console's CSP; colours come from style.css classes.
 */
import { formatDuration, formatRate } from './format.js';
import type { ThroughputView } from './types.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const WIDTH = 900;
const HEIGHT = 240;
const MARGIN = { left: 70, right: 16, top: 22, bottom: 26 };
/** The time axis spans at least this much, so a seed's first seconds are not stretched across the chart. */
const MIN_SPAN_MS = 10_000;

type Attrs = Record<string, string | number>;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Array<SVGElement | string>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) el.append(child);
  return el;
}

/** A round upper bound for the rate axis: 1, 2 or 5 × 10^n in the unit the axis shows (B, KiB, MiB, ... per second). */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1024;
  const unit = 1024 ** Math.max(0, Math.floor(Math.log(value) / Math.log(1024)));
  const inUnit = value / unit;
  const exponent = Math.floor(Math.log10(inUnit));
  for (const step of [1, 2, 5, 10]) {
    const candidate = step * 10 ** exponent;
    if (candidate >= inUnit) return candidate * unit;
  }
  return 10 ** (exponent + 1) * unit;
}

/** Approximate width of a band label's character (11px, semibold). */
const LABEL_CHAR_PX = 6.6;

/** The label cut to what fits in `width` pixels (with an ellipsis), or null when too little fits. */
function fitLabel(label: string, width: number): string | null {
  const chars = Math.floor((width - 8) / LABEL_CHAR_PX);
  if (chars >= label.length) return label;
  return chars >= 4 ? `${label.slice(0, chars - 1)}…` : null;
}

/** The chart for a throughput view; `now` extends an active seed's time axis to the present. */
export function renderThroughputChart(view: ThroughputView, now: number): SVGSVGElement {
  const samples = view.samples;
  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'data-testid': 'throughput-chart', 'data-points': samples.length, 'aria-label': 'Transfer rate over time' });
  const first = samples[0];
  if (!first) {
    root.append(svg('text', { x: WIDTH / 2, y: HEIGHT / 2, class: 'chart-empty', 'text-anchor': 'middle' }, 'No throughput recorded yet.'));
    return root;
  }
  const active = view.state === 'running' || view.state === 'pending';
  const t0 = first.t;
  const lastT = samples.at(-1)!.t;
  const t1 = Math.max(t0 + MIN_SPAN_MS, active ? Math.max(lastT, Math.min(now, lastT + 5_000)) : lastT);
  const peak = Math.max(...samples.map((s) => s.bytesPerSec));
  const yMax = niceMax(peak * 1.1);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (t: number): number => MARGIN.left + ((t - t0) / (t1 - t0)) * plotW;
  const y = (rate: number): number => MARGIN.top + plotH - (Math.min(rate, yMax) / yMax) * plotH;
  const fmt = (n: number): string => n.toFixed(1);

  // Stage bands: from each stage's start to the next one's (the first from the first sample).
  const stageMarks = view.marks.filter((m) => m.kind === 'stage').sort((a, b) => a.t - b.t);
  const bands = svg('g', { class: 'chart-bands' });
  const starts = stageMarks.length > 0 && stageMarks[0]!.t > t0 && first.stage ? [{ t: t0, label: first.stage }, ...stageMarks] : stageMarks;
  starts.forEach((mark, i) => {
    const from = x(Math.max(t0, mark.t));
    const to = x(Math.min(t1, starts[i + 1]?.t ?? t1));
    if (to - from <= 0) return;
    const band = svg('rect', { x: fmt(from), y: MARGIN.top, width: fmt(to - from), height: plotH, class: `chart-band chart-band-${i % 2}`, 'data-testid': `chart-stage-${mark.label}` });
    band.append(svg('title', {}, mark.label));
    bands.append(band);
    const label = fitLabel(mark.label, to - from);
    if (label !== null) bands.append(svg('text', { x: fmt(from + 4), y: MARGIN.top + 12, class: 'chart-band-label' }, label));
  });
  root.append(bands);

  // Rate axis: 0, half, max.
  const axis = svg('g', { class: 'chart-axis' });
  for (const fraction of [0, 0.5, 1]) {
    const rate = yMax * fraction;
    axis.append(
      svg('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: fmt(y(rate)), y2: fmt(y(rate)), class: fraction === 0 ? 'chart-baseline' : 'chart-grid' }),
      svg('text', { x: MARGIN.left - 6, y: fmt(y(rate) + 4), 'text-anchor': 'end' }, formatRate(rate)),
    );
  }
  // Time axis: elapsed since the first sample.
  for (const fraction of [0, 0.5, 1]) {
    const t = t0 + (t1 - t0) * fraction;
    axis.append(svg('text', { x: fmt(x(t)), y: HEIGHT - 8, 'text-anchor': fraction === 0 ? 'start' : fraction === 1 ? 'end' : 'middle' }, fraction === 0 ? '0s' : formatDuration((t - t0) / 1000)));
  }
  root.append(axis);

  // The rate: area and line through every sample.
  const points = samples.map((s) => `${fmt(x(s.t))} ${fmt(y(s.bytesPerSec))}`);
  const line = `M${points.join(' L')}`;
  root.append(
    svg('path', { d: `${line} L${fmt(x(lastT))} ${fmt(y(0))} L${fmt(x(t0))} ${fmt(y(0))} Z`, class: 'chart-area' }),
    svg('path', { d: line, class: 'chart-line', 'data-testid': 'throughput-line', 'data-points': samples.length }),
  );

  // Attempts (resumes) and controller restarts.
  const marks = svg('g', { class: 'chart-marks' });
  for (const mark of view.marks) {
    if (mark.kind === 'stage' || mark.t < t0 || mark.t > t1) continue;
    const at = fmt(x(mark.t));
    const testid = mark.kind === 'attempt' ? `chart-mark-attempt-${mark.attempt ?? ''}` : 'chart-mark-restart';
    const group = svg('g', { class: `chart-mark chart-mark-${mark.kind}`, 'data-testid': testid });
    group.append(
      svg('title', {}, mark.label),
      svg('line', { x1: at, x2: at, y1: MARGIN.top, y2: MARGIN.top + plotH }),
      // Restarts label to the left of their line, attempts to the right: a resume right after a restart stays readable.
      svg('text', { x: mark.kind === 'restart' ? fmt(x(mark.t) - 3) : fmt(x(mark.t) + 3), y: MARGIN.top - 6, 'text-anchor': mark.kind === 'restart' ? 'end' : 'start' }, mark.kind === 'attempt' ? `attempt ${mark.attempt ?? '?'}` : 'restart'),
    );
    marks.append(group);
  }
  root.append(marks);
  return root;
}

/** One line under the chart: what it shows, in words. */
export function describeThroughput(view: ThroughputView): string {
  const samples = view.samples;
  if (samples.length === 0) return '';
  const peak = Math.max(...samples.map((s) => s.bytesPerSec));
  const moving = samples.filter((s) => s.stage === 'transfer' && s.bytesPerSec > 0);
  const average = moving.length > 0 ? moving.reduce((sum, s) => sum + s.bytesPerSec, 0) / moving.length : null;
  const attempts = Math.max(0, ...samples.map((s) => s.attempt));
  const restarts = view.marks.filter((m) => m.kind === 'restart').length;
  const parts = [
    `${samples.length} sample${samples.length === 1 ? '' : 's'}, one per ${formatDuration(view.intervalMs / 1000)}`,
    `peak ${formatRate(peak)}`,
    `average while moving ${formatRate(average)}`,
    `${attempts} transfer attempt${attempts === 1 ? '' : 's'}`,
  ];
  if (restarts > 0) parts.push(`${restarts} controller restart${restarts === 1 ? '' : 's'}`);
  return parts.join(' · ');
}
