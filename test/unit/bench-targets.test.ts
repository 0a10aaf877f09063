import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { QUICK_BYTES, readBenchEnv } from '../../bench/env.js';
import { childTimesFromTail, pipeCpuSeconds, seedCpuSeconds, stealSeconds, sumPipeCpu, timedPipeline } from '../../bench/procs.js';
import { pipeCpu, targetsTable } from '../../bench/report.js';
import { DEFAULT_BYTES, makeRecipe, PAGE, planFiles, recipeKey, SMALL_FILES } from '../../bench/recipe.js';
import { aggregateRate, atLeast, atMost, formatTarget, judge, latencyStats, makeFigure, parseCount, parseSize, percentile, ratio } from '../../bench/targets.js';

describe('bench targets', () => {
  it('judges a figure against its target, n/a when unmeasured or without a target', () => {
    expect(judge(0.95, atLeast(0.9))).toBe('pass');
    expect(judge(0.9, atLeast(0.9))).toBe('pass');
    expect(judge(0.33, atLeast(0.9, 1.0))).toBe('fail');
    expect(judge(100, atMost(100))).toBe('pass');
    expect(judge(154, atMost(100))).toBe('fail');
    expect(judge(null, atMost(100))).toBe('n/a');
    expect(judge(Number.NaN, atMost(100))).toBe('n/a');
    expect(judge(3, null)).toBe('n/a');
  });

  it('makes a figure with its verdict and prints its target', () => {
    const figure = makeFigure({ key: 'seed.ratio', section: 'seed', what: 'ratio', value: 0.26, unit: '×', target: atLeast(0.9, 1.0) });
    expect(figure).toEqual({ key: 'seed.ratio', section: 'seed', what: 'ratio', value: 0.26, unit: '×', target: { op: '>=', value: 0.9, stretch: 1.0 }, verdict: 'fail', note: null });
    expect(formatTarget(figure.target, '×')).toBe('≥ 0.9× (stretch ≥ 1×)');
    expect(formatTarget(atMost(20), ' ms')).toBe('≤ 20 ms');
    expect(formatTarget(null)).toBe('—');
  });

  it('prints every figure with its verdict and counts them', () => {
    const text = targetsTable([
      makeFigure({ key: 'seed.ratio', section: 'seed', what: 'seed / tar|nc', value: 0.95, unit: '×', target: atLeast(0.9) }),
      makeFigure({ key: 'rss.sourceAgentMiB', section: 'seed', what: 'source RSS', value: 138.8, unit: ' MiB', target: atMost(100), note: 'loaded machine' }),
      makeFigure({ key: 'parallel.ratio', section: 'parallel', what: 'four at once', value: null, unit: '×', target: atLeast(0.9) }),
    ]);
    const lines = text.split('\n');
    expect(lines[1]).toMatch(/^seed \/ tar\|nc\s+0\.95×\s+≥ 0\.9×\s+PASS\s+seed\.ratio$/);
    expect(lines[2]).toMatch(/138\.8 MiB\s+≤ 100 MiB\s+FAIL\s+rss\.sourceAgentMiB {2}\(loaded machine\)$/);
    expect(lines[3]).toMatch(/four at once\s+n\/a\s+≥ 0\.9×\s+n\/a\s+parallel\.ratio$/);
    expect(lines.at(-1)).toBe('1 pass, 1 fail, 1 not measured');
  });

  it('computes ratios only from two measured numbers', () => {
    expect(ratio(96.7, 377)).toBe(0.26);
    expect(ratio(1, 3, 3)).toBe(0.333);
    expect(ratio(null, 377)).toBeNull();
    expect(ratio(96.7, null)).toBeNull();
    expect(ratio(96.7, 0)).toBeNull();
  });

  it('aggregates transfers that ran at once over the span from first start to last end', () => {
    const rate = aggregateRate([
      { bytes: 100e6, interval: { startMs: 1_000, endMs: 2_000 } },
      { bytes: 100e6, interval: { startMs: 1_500, endMs: 3_000 } },
    ]);
    expect(rate).toBe(100e6); // 200 MB over 2 s
    expect(aggregateRate([{ bytes: 1, interval: null }, { bytes: 1, interval: { startMs: 0, endMs: 1 } }])).toBeNull();
    expect(aggregateRate([])).toBeNull();
    expect(aggregateRate([{ bytes: 1, interval: { startMs: 5, endMs: 5 } }])).toBeNull();
  });

  it('takes nearest-rank percentiles and summarises a latency sample', () => {
    const samples = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100 ms
    expect(percentile(samples, 0.5)).toBe(50);
    expect(percentile(samples, 0.99)).toBe(99);
    expect(percentile([7], 0.99)).toBe(7);
    expect(() => percentile([], 0.5)).toThrow(RangeError);
    const stats = latencyStats(samples);
    expect(stats).toMatchObject({ n: 100, p50Ms: 50, p99Ms: 99, maxMs: 100, meanMs: 50.5, firstTenthP50Ms: 5, lastTenthP50Ms: 95 });
  });

  it('parses sizes and counts, naming the knob in a refusal', () => {
    expect(parseSize('1073741824', 'X')).toBe(2 ** 30);
    expect(parseSize('512M', 'X')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5G', 'X')).toBe(1.5 * 2 ** 30);
    expect(parseSize('2GiB', 'X')).toBe(2 * 2 ** 30);
    expect(() => parseSize('lots', 'SEEDWIRE_BENCH_BYTES')).toThrow(/SEEDWIRE_BENCH_BYTES.*'lots'/);
    expect(parseCount(undefined, 'X', 4)).toBe(4);
    expect(parseCount('', 'X', 4)).toBe(4);
    expect(parseCount('8', 'X', 4)).toBe(8);
    expect(() => parseCount('0', 'SEEDWIRE_BENCH_LANES', 4)).toThrow(/SEEDWIRE_BENCH_LANES/);
    expect(() => parseCount('2.5', 'SEEDWIRE_BENCH_LANES', 4)).toThrow(/SEEDWIRE_BENCH_LANES/);
  });
});

describe('bench env', () => {
  it('defaults to a 1.5 GiB dataset, lanes min(4, cores), four at once, the doubled run on', () => {
    const env = readBenchEnv({}, '/r', 2);
    expect(env).toMatchObject({ bytes: DEFAULT_BYTES, quick: false, lanes: 2, parallel: 4, double: true, sections: null, cacheDir: '/r/bench/.data', profileDir: null });
    expect(readBenchEnv({}, '/r', 16).lanes).toBe(4);
    expect([...readBenchEnv({}, '/r', 2).seeds]).toEqual(['none', 'zstd', 'during']);
  });

  it('scales down with SEEDWIRE_BENCH_QUICK, and explicit knobs win', () => {
    const quick = readBenchEnv({ SEEDWIRE_BENCH_QUICK: '1' }, '/r', 2);
    expect(quick).toMatchObject({ bytes: QUICK_BYTES, quick: true, ops: 100, idleAgents: 100 });
    const explicit = readBenchEnv({ SEEDWIRE_BENCH_QUICK: '1', SEEDWIRE_BENCH_BYTES: '256M', SEEDWIRE_BENCH_LANES: '3', SEEDWIRE_BENCH_DOUBLE: '0', SEEDWIRE_BENCH_SECTIONS: 'baseline, seed' }, '/r', 2);
    expect(explicit).toMatchObject({ bytes: 256 * 2 ** 20, lanes: 3, double: false });
    expect([...explicit.sections!]).toEqual(['baseline', 'seed']);
    expect(readBenchEnv({ SEEDWIRE_BENCH_QUICK: '0' }, '/r', 2).quick).toBe(false);
  });

  it('refuses a seed kind it does not know', () => {
    expect(() => readBenchEnv({ SEEDWIRE_BENCH_SEEDS: 'none,gzip' }, '/r', 2)).toThrow(/SEEDWIRE_BENCH_SEEDS: expected some of none, zstd, during, got 'gzip'/);
  });
});

describe('bench dataset recipe', () => {
  const version = 'mariadbd  Ver 10.11.19-MariaDB';

  it('keys a recipe by its content: stable for the same recipe, another for any change', () => {
    const recipe = makeRecipe(DEFAULT_BYTES, version);
    expect(recipeKey(recipe)).toBe(recipeKey(makeRecipe(DEFAULT_BYTES, `${version}\n`)));
    expect(recipeKey(recipe)).toMatch(/^1536m-[0-9a-f]{16}$/);
    const others = [makeRecipe(DEFAULT_BYTES * 2, version), makeRecipe(DEFAULT_BYTES, 'mariadbd  Ver 11.4.2-MariaDB'), { ...recipe, version: recipe.version + 1 }, { ...recipe, mariadbRows: 7 }, { ...recipe, smallFiles: 10 }];
    for (const other of others) expect(recipeKey(other)).not.toBe(recipeKey(recipe));
  });

  it('scales the rows with the size and refuses a tiny dataset', () => {
    expect(makeRecipe(DEFAULT_BYTES, version).mariadbRows).toBe(200_000);
    expect(makeRecipe(DEFAULT_BYTES * 2, version).mariadbRows).toBe(400_000);
    expect(makeRecipe(64 * 2 ** 20, version).mariadbRows).toBe(8_333);
    expect(() => makeRecipe(2 ** 20, version)).toThrow(/at least 64 MiB/);
  });

  it('plans 2,000 small tables and four large ones that fill the size beside the datadir, the same each time', () => {
    const recipe = makeRecipe(DEFAULT_BYTES, version);
    const datadir = 300 * 2 ** 20;
    const plan = planFiles(recipe, datadir);
    expect(planFiles(recipe, datadir)).toEqual(plan);
    expect(plan.filter((f) => f.kind === 'small')).toHaveLength(SMALL_FILES);
    const large = plan.filter((f) => f.kind === 'large');
    expect(large).toHaveLength(4);
    for (const f of large) expect(f.size % PAGE).toBe(0);
    expect(new Set(plan.map((f) => f.path)).size).toBe(plan.length);
    const total = plan.reduce((sum, f) => sum + f.size, 0) + datadir;
    expect(total).toBeLessThanOrEqual(recipe.totalBytes);
    expect(total).toBeGreaterThan(recipe.totalBytes - 4 * PAGE);
    // Doubling the size doubles what the large tables hold, not the small ones.
    const doubled = planFiles(makeRecipe(DEFAULT_BYTES * 2, version), datadir);
    expect(doubled.filter((f) => f.kind === 'small')).toEqual(plan.filter((f) => f.kind === 'small'));
  });

  it('still plans a page per large table when the small ones and the datadir fill the size', () => {
    const plan = planFiles(makeRecipe(64 * 2 ** 20, version), 200 * 2 ** 20);
    expect(plan.filter((f) => f.kind === 'large').map((f) => f.size)).toEqual([PAGE, PAGE, PAGE, PAGE]);
  });
});

describe('the CPU of a tar | nc pipeline', () => {
  it('reads the children’s line of bash’s `times` from a real shell, after the pipeline’s own output', () => {
    // A pipeline that burns a little CPU in its children, as tar and nc do.
    const out = execFileSync('bash', ['-c', timedPipeline('head -c 20000000 /dev/zero | sha256sum >/dev/null; echo 0m9.000s 0m9.000s-not-a-times-line')], { encoding: 'utf8' });
    const lines = out.trimEnd().split('\n');
    const times = childTimesFromTail(lines);
    expect(times).not.toBeNull();
    expect(times!.user + times!.sys).toBeGreaterThan(0);
    expect(times!.user + times!.sys).toBeLessThan(9);
    // The last line of that shape wins, minutes count.
    expect(childTimesFromTail(['0m0.001s 0m0.002s', '1m2.500s 0m0.250s', 'tar: done'])).toEqual({ user: 62.5, sys: 0.25 });
    expect(childTimesFromTail(['no times here'])).toBeNull();
  });

  it('keeps the pipeline’s failure as the shell’s exit code', () => {
    expect(() => execFileSync('bash', ['-c', timedPipeline('false | cat')], { stdio: 'pipe' })).toThrow();
  });

  it('sums ends over pipelines, totals them, and is n/a when one end did not report', () => {
    const a = { sender: { user: 1, sys: 2 }, receiver: { user: 0.5, sys: 3 } };
    const b = { sender: { user: 1, sys: 1 }, receiver: { user: 0.5, sys: 1 } };
    expect(sumPipeCpu([a, b])).toEqual({ sender: { user: 2, sys: 3 }, receiver: { user: 1, sys: 4 } });
    expect(pipeCpuSeconds(sumPipeCpu([a, b]))).toBe(10);
    expect(pipeCpuSeconds({ sender: null, receiver: { user: 1, sys: 1 } })).toBeNull();
    expect(sumPipeCpu([a, { sender: null, receiver: null }])!.sender).toBeNull();
    expect(pipeCpu(a)).toBe('sender user 1.00 + sys 2.00, receiver user 0.50 + sys 3.00');
    expect(seedCpuSeconds({ controller: 1.5, source: 2, target: 2.5 })).toBe(6);
    expect(seedCpuSeconds({ controller: 1.5, source: null })).toBeNull();
  });

  it('reads the time the hypervisor stole from /proc/stat: a count of seconds that never goes back', () => {
    const first = stealSeconds();
    expect(first).not.toBeNull();
    expect(first!).toBeGreaterThanOrEqual(0);
    expect(stealSeconds()!).toBeGreaterThanOrEqual(first!);
  });
});
