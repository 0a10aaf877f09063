/**
 * The LVM backend's wiring, driven through tiny fixture scripts standing in for lvs, lvcreate
 * and lvremove on PATH (they print the fixtures and record their arguments). Real LVM needs
 * device-mapper, which this environment lacks, so mounting is only checked up to its refusal.
 */
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../../agent/exec/run.js';
import type { Runner } from '../../agent/mysql/runner.js';
import { createSnapshotBackend } from '../../agent/snapshot/index.js';
import { makeTestAgentConfig } from '../helpers/host-op-context.js';

const fixtures = fileURLToPath(new URL('../fixtures/lvm/', import.meta.url));

describe('LVM cannot run here (no device-mapper): LVM backend through fixture lvs/lvcreate/lvremove scripts', () => {
  let dir: string;
  let run: Runner;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sw-lvm-'));
    const script = (body: string) => `#!/bin/bash\nprintf '%s\\n' "$(basename "$0") $*" >> ${dir}/calls.log\n${body}\n`;
    await writeFile(join(dir, 'lvs'), script(`cat ${dir}/report.json`));
    await writeFile(join(dir, 'lvcreate'), script(`cp ${dir}/after-create.json ${dir}/report.json`));
    await writeFile(join(dir, 'lvremove'), script(`[ -e ${dir}/lvremove-fails ] && { echo "  Logical volume vg0/$2 contains a filesystem in use." >&2; exit 5; }; exit 0`));
    for (const name of ['lvs', 'lvcreate', 'lvremove']) await chmod(join(dir, name), 0o755);
    await copyFile(join(fixtures, 'lvs-vg0-snapshots.json'), join(dir, 'report.json'));
    const env = { PATH: `${dir}:${process.env.PATH ?? ''}` };
    run = (command, options = {}) => runCommand(command, { env, timeoutMs: options.timeoutMs ?? 10_000, tailBytes: options.tailBytes });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const makeBackend = () =>
    createSnapshotBackend(
      makeTestAgentConfig({
        mysql: { datadir: '/var/lib/mysql/data', port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand: 'true', commandTimeoutSeconds: 5 },
        snapshot: { backend: 'lvm', mountPoint: join(dir, 'mnt'), lvm: { volumeGroup: 'vg0', logicalVolume: 'mysql', size: '10G', namePrefix: 'seedwire-' } },
      }),
    );
  const calls = async () => (await readFile(join(dir, 'calls.log'), 'utf8')).trim().split('\n');

  it('lists prefixed snapshots of the origin LV with sizes and times, none mounted', async () => {
    expect(await makeBackend().list({ run })).toEqual([
      { name: 'before-upgrade', path: '/dev/vg0/seedwire-before-upgrade', createdAt: '2026-11-24T21:05:13.000Z', sizeBytes: 10737418240, mounted: false },
      { name: '20261125-063000', path: '/dev/vg0/seedwire-20261125-063000', createdAt: '2026-11-25T06:30:00.000Z', sizeBytes: 10737418240, mounted: false },
    ]);
    expect(await calls()).toEqual(['lvs --reportformat json -o lv_name,lv_path,lv_time,lv_size,origin --units b --nosuffix vg0']);
  });

  it('create runs lvcreate -s with the prefixed name and returns the new snapshot from lvs', async () => {
    const report = JSON.parse(await readFile(join(fixtures, 'lvs-vg0-snapshots.json'), 'utf8')) as { report: Array<{ lv: unknown[] }> };
    report.report[0]?.lv.push({ lv_name: 'seedwire-fresh', lv_path: '/dev/vg0/seedwire-fresh', lv_time: '2026-11-25 07:00:00 +0000', lv_size: '10737418240', origin: 'mysql' });
    await writeFile(join(dir, 'after-create.json'), JSON.stringify(report));
    const created = await makeBackend().create('fresh', { run });
    expect(created).toEqual({ name: 'fresh', path: '/dev/vg0/seedwire-fresh', createdAt: '2026-11-25T07:00:00.000Z', sizeBytes: 10737418240, mounted: false });
    expect(await calls()).toContain('lvcreate -s -n seedwire-fresh -L 10G vg0/mysql');
  });

  it('create refuses an existing name without calling lvcreate', async () => {
    await expect(makeBackend().create('before-upgrade', { run })).rejects.toMatchObject({ code: 'SEEDWIRE_CONFLICT' });
    expect((await calls()).some((c) => c.startsWith('lvcreate'))).toBe(false);
  });

  it('remove runs lvremove -f vg/name; busy and unknown snapshots are refused', async () => {
    const backend = makeBackend();
    backend.markBusy('before-upgrade');
    await expect(backend.remove('before-upgrade', { run })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('being read by a seed') });
    backend.unmarkBusy('before-upgrade');
    await backend.remove('before-upgrade', { run });
    expect(await calls()).toContain('lvremove -f vg0/seedwire-before-upgrade');
    await expect(backend.remove('nightly-backup', { run })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: 'no snapshot named nightly-backup' });
  });

  it('a failing lvremove is SEEDWIRE_COMMAND_FAILED carrying its stderr', async () => {
    await writeFile(join(dir, 'lvremove-fails'), '');
    await expect(makeBackend().remove('before-upgrade', { run })).rejects.toMatchObject({
      code: 'SEEDWIRE_COMMAND_FAILED',
      message: expect.stringContaining('contains a filesystem in use'),
    });
  });

  it('mount is refused when the origin LV is not mounted (the datadir cannot be located)', async () => {
    await expect(makeBackend().mount('before-upgrade', { run })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('/dev/vg0/mysql is not mounted') });
    expect(await makeBackend().mounted({ run })).toBeNull();
  });
});
