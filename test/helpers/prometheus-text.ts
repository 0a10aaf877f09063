/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), written to its rules
 * because no Prometheus parser package is installed here: `# HELP` / `# TYPE` lines, metric and
 * label names, escaped label values, float values (NaN, +Inf, -Inf), one TYPE per family before
 * its samples, no duplicate series, and histogram buckets that are cumulative, end with +Inf and
 * agree with _count. Any violation throws naming the line.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value '${text}'`);
  return Number(text);
}

/** Parses `{a="x",b="y\"z"}` starting at `i`; returns the labels and the index after `}`. */
function parseLabels(line: string, start: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  while (true) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without '='`);
    const name = line.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new Error(`${where}: bad label name '${name}'`);
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label '${name}' twice`);
    if (line[eq + 1] !== '"') throw new Error(`${where}: label value must be quoted`);
    let value = '';
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === '\\') {
        const next = line[++j];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`${where}: bad escape '\\${next}'`);
      } else value += line[j];
    }
    if (line[j] !== '"') throw new Error(`${where}: unterminated label value`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') throw new Error(`${where}: expected ',' or '}' after a label`);
  }
}

function familyOf(sampleName: string, families: Map<string, MetricFamily>): MetricFamily | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const family = families.get(sampleName.slice(0, -suffix.length));
      if (family && (family.type === 'histogram' || family.type === 'summary')) return family;
    }
  }
  return undefined;
}

function checkHistogram(family: MetricFamily): void {
  const series = new Map<string, { buckets: Array<{ le: number; value: number }>; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`${family.name}: bucket without le`);
      entry.buckets.push({ le: parseValue(le, family.name), value: s.value });
    } else if (s.name.endsWith('_count')) entry.count = s.value;
  }
  for (const { buckets, count } of series.values()) {
    if (buckets.at(-1)?.le !== Number.POSITIVE_INFINITY) throw new Error(`${family.name}: the last bucket must be le="+Inf"`);
    for (let k = 1; k < buckets.length; k++) {
      if (buckets[k]!.le <= buckets[k - 1]!.le) throw new Error(`${family.name}: buckets out of order`);
      if (buckets[k]!.value < buckets[k - 1]!.value) throw new Error(`${family.name}: buckets are not cumulative`);
    }
    if (count !== buckets.at(-1)!.value) throw new Error(`${family.name}: _count ${count} is not the +Inf bucket ${buckets.at(-1)!.value}`);
  }
}

export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const seriesSeen = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition must end with a newline');
  lines.forEach((line, index) => {
    const where = `line ${index + 1} '${line}'`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string];
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name`);
      const family = families.get(name) ?? { name, type: 'untyped' as MetricType, help: '', samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest as MetricType)) throw new Error(`${where}: unknown type`);
        if (family.samples.length > 0) throw new Error(`${where}: TYPE after samples`);
        family.type = rest as MetricType;
      } else family.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      families.set(name, family);
      return;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) throw new Error(`${where}: no value`);
    const name = line.slice(0, nameEnd);
    if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i, where));
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const [valueText, timestamp, ...extra] = line.slice(i + 1).trim().split(/\s+/);
    if (extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`${where}: trailing garbage`);
    const value = parseValue(valueText ?? '', where);
    const family = familyOf(name, families) ?? { name, type: 'untyped' as MetricType, help: '', samples: [] };
    families.set(family.name, family);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seriesSeen.has(key)) throw new Error(`${where}: duplicate series`);
    seriesSeen.add(key);
    if (family.type === 'counter' && value < 0) throw new Error(`${where}: a counter is negative`);
    family.samples.push({ name, labels, value });
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

/** The value of one series, or undefined; labels must match exactly. */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    for (const s of family.samples) {
      if (s.name !== name) continue;
      const keys = Object.keys(s.labels);
      if (keys.length === Object.keys(labels).length && keys.every((k) => s.labels[k] === labels[k])) return s.value;
    }
  }
  return undefined;
}
