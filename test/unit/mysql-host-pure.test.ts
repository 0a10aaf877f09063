import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readLogTail, takeLastLines } from '../../agent/mysql/error-log.js';
import { validateDeleteTarget } from '../../agent/mysql/datadir.js';
import { deriveDataPath } from '../../agent/snapshot/common.js';
import { findMountAt, parseMounts } from '../../agent/snapshot/mounts.js';
import { makeSnapshotName, validateSnapshotName } from '../../agent/snapshot/names.js';

describe('mysql error log tail', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('takes the last lines, ignoring one trailing newline and CRs', () => {
    expect(takeLastLines('a\nb\nc\n', 2)).toEqual(['b', 'c']);
    expect(takeLastLines('a\r\nb', 5)).toEqual(['a', 'b']);
    expect(takeLastLines('', 3)).toEqual([]);
  });

  it('reads from the end of a file larger than one chunk', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sw-log-'));
    const path = join(dir, 'error.log');
    const lines = Array.from({ length: 20_000 }, (_, i) => `2026-11-25 line ${i}`);
    await writeFile(path, `${lines.join('\n')}\n`);
    expect(await readLogTail(path, 3)).toEqual(['2026-11-25 line 19997', '2026-11-25 line 19998', '2026-11-25 line 19999']);
    expect(await readLogTail(path, 5000)).toEqual(lines.slice(-5000));
  });

  it('never reads more than the byte bound, dropping the partial first line', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sw-log-'));
    const path = join(dir, 'error.log');
    await writeFile(path, `${'x'.repeat(10_000)}\nshort one\nshort two\n`);
    expect(await readLogTail(path, 10, 100)).toEqual(['short one', 'short two']);
  });
});

describe('delete-mysql-datadir target checks', () => {
  it('refuses /, an empty path and anything but the configured datadir', () => {
    expect(() => validateDeleteTarget('/', '/')).toThrow(/contents of \//);
    expect(() => validateDeleteTarget('', '/var/lib/mysql')).toThrow(/empty path/);
    expect(() => validateDeleteTarget('/var/lib', '/var/lib/mysql')).toThrow(/only the configured mysql.datadir/);
    expect(() => validateDeleteTarget('/var/lib/mysql', '/var/lib/mysql')).not.toThrow();
    expect(() => validateDeleteTarget('/', '/')).toThrow(expect.objectContaining({ code: 'SEEDWIRE_OP_REFUSED' }));
  });
});

describe('snapshot helpers', () => {
  it('default names are UTC timestamps', () => {
    expect(makeSnapshotName(new Date('2026-11-25T06:30:00Z'))).toBe('20261125-063000');
  });

  it('validates names even when called directly', () => {
    expect(validateSnapshotName('before-upgrade.1')).toBe('before-upgrade.1');
    for (const bad of ['', '..', 'a/b', 'x y', "a'b", 'a'.repeat(101)]) expect(() => validateSnapshotName(bad)).toThrow(expect.objectContaining({ code: 'SEEDWIRE_BAD_PARAMS' }));
  });

  it('derives the datadir inside a mounted snapshot, refusing a datadir outside the volume', () => {
    expect(deriveDataPath('/mnt/seedwire', '/data/mysql', '/data/mysql/data', 'snapshot.btrfs.subvolume')).toBe('/mnt/seedwire/data');
    expect(deriveDataPath('/mnt/seedwire', '/var/lib/mysql', '/var/lib/mysql', 'x')).toBe('/mnt/seedwire');
    expect(() => deriveDataPath('/mnt/seedwire', '/data/mysql', '/data/mysql-other', 'snapshot.btrfs.subvolume')).toThrow(/snapshot.btrfs.subvolume/);
  });

  it('parses /proc/self/mounts with escaped spaces; the last mount at a target wins', () => {
    const text = [
      '/dev/sda1 / ext4 rw,relatime 0 0',
      '/dev/loop0 /tmp/a\\040b btrfs rw,subvol=/ 0 0',
      '/dev/mapper/vg0-seedwire--x /mnt/seedwire xfs ro,nouuid 0 0',
      '/dev/loop0 /mnt/seedwire btrfs ro,subvol=/snap 0 0',
      '',
    ].join('\n');
    const entries = parseMounts(text);
    expect(entries).toHaveLength(4);
    expect(entries[1]?.target).toBe('/tmp/a b');
    expect(findMountAt(entries, '/mnt/seedwire')).toMatchObject({ source: '/dev/loop0', options: ['ro', 'subvol=/snap'] });
    expect(findMountAt(entries, '/mnt/other')).toBeNull();
  });
});
