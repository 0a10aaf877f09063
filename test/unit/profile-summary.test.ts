import { describe, expect, it } from 'vitest';
import { formatSummary, moduleOf, summarizeProfile, type CpuProfile } from '../../bench/profile-summary.js';

/** A literal profile: root → main → (relay → writev), main → hash; idle and GC beside them. */
const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber });
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 5, 6] },
    { id: 2, callFrame: frame('main', 'file:///w/dist/server-stub/main.js', 9), children: [3, 7] },
    { id: 3, callFrame: frame('forwardData', 'file:///w/dist/server-stub/hub/relay.js', 76), children: [4] },
    { id: 4, callFrame: frame('writev') },
    { id: 5, callFrame: frame('(idle)') },
    { id: 6, callFrame: frame('(garbage collector)') },
    { id: 7, callFrame: frame('update', 'node:internal/crypto/hash', 131) },
  ],
  startTime: 0,
  endTime: 10_000_000,
  // Each sample stands for the next delta: 1 ms apiece here.
  samples: [3, 4, 4, 5, 5, 5, 5, 6, 7, 2],
  timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
};

describe('profile summary', () => {
  it('names modules by project path, package path or node module', () => {
    expect(moduleOf('file:///work/wt/x/dist/agent/streams/port.js', 'send')).toBe('agent/streams/port.js');
    expect(moduleOf('file:///work/main/node_modules/ws/lib/receiver.js', 'consume')).toBe('ws/lib/receiver.js');
    expect(moduleOf('node:internal/buffer', 'FastBuffer')).toBe('node:internal/buffer');
    expect(moduleOf('', '(garbage collector)')).toBe('(garbage collector)');
    expect(moduleOf('', 'writev')).toBe('(native)');
  });

  it('sums self time per function and module as shares of busy time (idle left out), and totals per project function', () => {
    const s = summarizeProfile(profile);
    expect(s.role).toBe('controller');
    expect(s.busyMs).toBe(5); // 9 timed samples (the last has no next delta), 4 of them idle
    expect(s.functions[0]).toEqual({ name: 'writev', selfMs: 2, share: 0.4 });
    expect(s.modules.map((m) => m.name)).toEqual(['(native)', 'server-stub/hub/relay.js', '(garbage collector)', 'node:internal/crypto/hash', 'server-stub/main.js']);
    expect(s.projectTotals).toEqual([
      { name: 'main server-stub/main.js:10', selfMs: 4, share: 0.8 },
      { name: 'forwardData server-stub/hub/relay.js:77', selfMs: 3, share: 0.6 },
    ]);
    const text = formatSummary('ctl.cpuprofile', s);
    expect(text).toContain('#### ctl.cpuprofile: controller, busy 0.01 s of 10.0 s');
    expect(text).toContain('| `writev` | 2 | 40.0% |');
  });
});
