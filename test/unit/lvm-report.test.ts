import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLvsReport, parseLvTime, selectSnapshotLvs } from '../../agent/snapshot/lvm-report.js';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/lvm/${name}`, import.meta.url), 'utf8');

describe('LVM cannot run here (no device-mapper): parsing lvs --reportformat json fixtures', () => {
  it('parses every LV with byte sizes and ISO creation times', () => {
    const lvs = parseLvsReport(fixture('lvs-vg0-snapshots.json'));
    expect(lvs).toHaveLength(6);
    expect(lvs[2]).toEqual({
      name: 'seedwire-20261125-063000',
      path: '/dev/vg0/seedwire-20261125-063000',
      createdAt: '2026-11-25T06:30:00.000Z',
      sizeBytes: 10737418240,
      origin: 'mysql',
    });
  });

  it('selects only prefixed snapshots of the configured origin, oldest first, prefix stripped', () => {
    const ours = selectSnapshotLvs(parseLvsReport(fixture('lvs-vg0-snapshots.json')), 'mysql', 'seedwire-');
    expect(ours.map((s) => s.snapshotName)).toEqual(['before-upgrade', '20261125-063000']);
    expect(ours[0]?.createdAt).toBe('2026-11-24T21:05:13.000Z');
  });

  it('parses output captured from lvm2 itself (test/fixtures/lvm/README.md says how)', () => {
    const lvs = parseLvsReport(fixture('lvs-vg0-captured.json'));
    expect(lvs.map((lv) => lv.name)).toEqual(['mysql', 'nightly-backup', 'seedwire-20261125-063000', 'seedwire-before-upgrade']);
    expect(lvs[0]).toMatchObject({ path: '/dev/vg0/mysql', sizeBytes: 268435456, origin: '' });
    const ours = selectSnapshotLvs(lvs, 'mysql', 'seedwire-');
    expect(ours.map((s) => [s.snapshotName, s.path, s.sizeBytes, s.createdAt])).toEqual([
      ['before-upgrade', '/dev/vg0/seedwire-before-upgrade', 67108864, '2026-11-24T21:05:13.000Z'],
      ['20261125-063000', '/dev/vg0/seedwire-20261125-063000', 67108864, '2026-11-25T06:30:00.000Z'],
    ]);
  });

  it('handles dashes in VG and LV names', () => {
    const ours = selectSnapshotLvs(parseLvsReport(fixture('lvs-dashed-names.json')), 'mysql-data', 'seedwire-');
    expect(ours.map((s) => [s.snapshotName, s.path])).toEqual([['first-copy', '/dev/data-vg/seedwire-first-copy']]);
  });

  it('an empty volume group is an empty list', () => {
    expect(parseLvsReport(fixture('lvs-empty.json'))).toEqual([]);
  });

  it('refuses output that is not an lvs report, as SEEDWIRE_COMMAND_FAILED', () => {
    expect(() => parseLvsReport('  WARNING: Failed to connect to lvmetad')).toThrow(expect.objectContaining({ code: 'SEEDWIRE_COMMAND_FAILED' }));
    expect(() => parseLvsReport('{"report":[{"lv":[{"lv_name":"x"}]}]}')).toThrow(expect.objectContaining({ code: 'SEEDWIRE_COMMAND_FAILED' }));
  });

  it('parses lvm times with offsets and rejects other shapes', () => {
    expect(parseLvTime('2026-01-10 12:00:00 -0500')).toBe('2026-01-10T17:00:00.000Z');
    expect(parseLvTime('')).toBeNull();
    expect(parseLvTime('yesterday')).toBeNull();
  });
});
