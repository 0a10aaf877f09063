import { describe, expect, it } from 'vitest';
import { formatProbeSummaries, summarizeProbe } from '../../bench/probe-summary.js';

/** What bench/probe.mjs writes, as literal lines: two samples, a peak, collections, loop delays, and a cut line. */
const lines = [
  '{"t":1,"rss":80,"heapUsed":18,"heapTotal":22,"external":3,"arrayBuffers":1}',
  '{"t":2,"peak":80,"smaps":{"node":40.8,"[anon <1 MiB maps]":24}}',
  '{"t":3,"rss":150.5,"heapUsed":16,"heapTotal":24,"external":60,"arrayBuffers":58}',
  '{"t":4,"rss":120,"heapUsed":15,"heapTotal":24,"external":30,"arrayBuffers":28}',
  '{"t":5,"peak":150.5,"smaps":{"[heap]":61.2,"node":40.9,"[anon <1 MiB maps]":26.8}}',
  '{"t":6,"gc":"minor","ms":0.8}',
  '{"t":7,"gc":"minor","ms":1.25}',
  '{"t":8,"gc":"major","ms":7.3}',
  '{"t":9,"loop":{"p50":1.1,"p99":4.5,"max":6.8}}',
  '{"t":10,"loop":{"p50":1.2,"p99":19.4,"max":96.5}}',
  '{"t":11,"loop":{"p50":1.1,"p99":9.7,"max":12',
].join('\n');

describe('probe summary', () => {
  it('finds the peak, what held it, the collections and the worst loop delay', () => {
    const s = summarizeProbe('bench-target-1-42', lines);
    expect(s.peakRssMiB).toBe(150.5);
    expect(s.atPeak).toEqual({ heapUsed: 16, external: 60, arrayBuffers: 58 });
    expect(s.mappings).toEqual([
      ['[heap]', 61.2],
      ['node', 40.9],
      ['[anon <1 MiB maps]', 26.8],
    ]);
    expect(s.gc).toEqual({ minor: { count: 2, ms: 2.1 }, major: { count: 1, ms: 7.3 } });
    expect(s.loop).toEqual({ worstP99: 19.4, max: 96.5 });
  });

  it('keeps only what falls inside a window', () => {
    const s = summarizeProbe('bench-target-1-42', lines, { from: 4, to: 9 });
    expect(s.peakRssMiB).toBe(120);
    expect(s.gc).toEqual({ minor: { count: 2, ms: 2.1 }, major: { count: 1, ms: 7.3 } });
    expect(s.loop).toEqual({ worstP99: 4.5, max: 6.8 });
    expect(s.mappings[0]).toEqual(['[heap]', 61.2]);
  });

  it('formats one Markdown row per process', () => {
    const table = formatProbeSummaries([summarizeProbe('bench-target-1-42', lines), summarizeProbe('idle-1', '')]);
    const rows = table.split('\n');
    expect(rows).toHaveLength(4);
    expect(rows[2]).toBe('| bench-target-1-42 | 150.5 | 16.0 / 60.0 / 58.0 | [heap] 61.2, node 40.9, [anon <1 MiB maps] 26.8 | minor 2 (2.1 ms), major 1 (7.3 ms) | 19.4 / 96.5 |');
    expect(rows[3]).toBe('| idle-1 | 0.0 | 0.0 / 0.0 / 0.0 |  |  | n/a |');
  });
});
