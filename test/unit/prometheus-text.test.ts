/** The exposition-format checker used by the /metrics test, on literal text. */
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, sampleValue } from '../helpers/prometheus-text.js';

const GOOD = `# HELP a_total Things.
# TYPE a_total counter
a_total{op="x",msg="say \\"hi\\"\\n"} 3
# HELP h Latency.
# TYPE h histogram
h_bucket{le="0.1"} 1
h_bucket{le="+Inf"} 2
h_sum 0.3
h_count 2
g 1.5e3 1700000000000
`;

describe('parsePrometheusText', () => {
  it('reads families, labels with escapes, histograms and timestamps', () => {
    const families = parsePrometheusText(GOOD);
    expect(families.get('a_total')).toMatchObject({ type: 'counter', help: 'Things.' });
    expect(sampleValue(families, 'a_total', { op: 'x', msg: 'say "hi"\n' })).toBe(3);
    expect(sampleValue(families, 'h_count')).toBe(2);
    expect(sampleValue(families, 'g')).toBe(1500);
  });

  it.each([
    ['a 1', 'must end with a newline'],
    ['# TYPE a counter\na -1\n', 'negative'],
    ['a{b="c} 1\n', 'unterminated'],
    ['a{1b="c"} 1\n', 'bad label name'],
    ['a 1\na 2\n', 'duplicate series'],
    ['a one\n', 'bad value'],
    ['a 1\n# TYPE a gauge\n', 'TYPE after samples'],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n', 'not cumulative'],
    ['# TYPE h histogram\nh_bucket{le="1"} 2\nh_count 2\n', '+Inf'],
  ])('refuses %j', (text, message) => {
    expect(() => parsePrometheusText(text)).toThrow(message);
  });
});
