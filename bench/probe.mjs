/**
 * A probe loaded into a bench process (`node --import bench/probe.mjs?dir=DIR&name=NAME`, set by
 * SEEDWIRE_BENCH_PROBE=DIR): where its memory and its event loop's time go, as JSON lines in
 * DIR/NAME-PID.jsonl. Plain JavaScript, so it loads before anything else and needs no loader.
 *
 *   {"t":…,"rss":…,"heapUsed":…,"external":…,"arrayBuffers":…}        every 100 ms (MiB)
 *   {"t":…,"loop":{"p50":…,"p99":…,"max":…}}                            every second (ms; 1 ms resolution)
 *   {"t":…,"gc":"minor|major|incremental|weakcb","ms":…}                 every collection
 *   {"t":…,"peak":…,"smaps":{"[heap]":…,"[anon]":…,"node":…}}            at each new RSS peak (+4 MiB; MiB by mapping)
 *
 * bench/probe-summary.ts turns the files into a table. Not loaded unless asked for: it costs a
 * /proc read at each new peak and an observer per collection.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { constants, monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { setInterval } from 'node:timers';

const params = new URL(import.meta.url).searchParams;
const dir = params.get('dir');
const name = params.get('name') ?? 'process';
if (dir) {
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/${name}-${process.pid}.jsonl`;
  const MiB = 1024 * 1024;
  const round = (n) => Math.round(n * 100) / 100;
  const write = (row) => appendFileSync(file, `${JSON.stringify({ t: Date.now(), ...row })}\n`);

  /** Resident MiB by mapping: anonymous memory split by mapping size, files by their base name. */
  const smaps = () => {
    const groups = {};
    let key = null;
    for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (head) {
        const kib = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024;
        const path = head[3];
        key = path.startsWith('/') ? path.replace(/.*\//, '') : path || (kib >= 1024 ? '[anon ≥1 MiB maps]' : '[anon <1 MiB maps]');
        continue;
      }
      const rss = /^Rss:\s+(\d+) kB/.exec(line);
      if (rss && key) groups[key] = (groups[key] ?? 0) + Number(rss[1]) / 1024;
    }
    return Object.fromEntries(Object.entries(groups).filter(([, v]) => v >= 0.5).map(([k, v]) => [k, round(v)]));
  };

  let peak = 0;
  setInterval(() => {
    const m = process.memoryUsage();
    const rss = m.rss / MiB;
    write({ rss: round(rss), heapUsed: round(m.heapUsed / MiB), heapTotal: round(m.heapTotal / MiB), external: round(m.external / MiB), arrayBuffers: round(m.arrayBuffers / MiB) });
    if (rss > peak + 4) {
      peak = rss;
      write({ peak: round(rss), smaps: smaps() });
    }
  }, 100).unref();

  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  setInterval(() => {
    if (delay.count > 0) write({ loop: { p50: round(delay.percentile(50) / 1e6), p99: round(delay.percentile(99) / 1e6), max: round(delay.max / 1e6) } });
    delay.reset();
  }, 1000).unref();

  const kinds = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) write({ gc: kinds[entry.detail?.kind] ?? String(entry.detail?.kind), ms: round(entry.duration) });
  }).observe({ entryTypes: ['gc'] });
}
