import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pageReporting, reportedToHostKiB } from '../../bench/host-memory.js';

describe('the bench reads free page reporting from the kernel parameters', () => {
  const dirs: string[] = [];
  const parameters = (files: Record<string, string>): string => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-page-reporting-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the KiB handed back and the order, as the kernel writes them (a trailing newline)', () => {
    const dir = parameters({ reported_kib: '251338968\n', page_reporting_order: '9\n' });
    expect(reportedToHostKiB(dir)).toBe(251_338_968);
    expect(pageReporting(dir)).toEqual({ order: 9 });
  });

  it('is null where the kernel has no such parameter (upstream kernels have no reported_kib) or it is not a count', () => {
    const dir = parameters({ page_reporting_order: '9\n', reported_kib: '-1\n' });
    expect(reportedToHostKiB(dir)).toBeNull();
    expect(reportedToHostKiB(join(dir, 'absent'))).toBeNull();
    expect(pageReporting(join(dir, 'absent'))).toBeNull();
  });
});
