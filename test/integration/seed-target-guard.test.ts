/**
 * The target's seed ops behind the datadir guard, through their handlers with a real OpContext
 * (real commands, real files, real processes holding files): cleanup only undoes what this seed's
 * prepare did, prepare refuses before it deletes or marks anything, the marker is never followed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MysqlConfig } from '../../agent/config/schema.js';
import { seedOps } from '../../agent/ops/seed.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { callOp, createHostOpContext, makeTestAgentConfig } from '../helpers/host-op-context.js';

let work: string;
let secret: string;
const holders: ChildProcess[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'sw-tguard-'));
  secret = join(work, 'root-only');
  await writeFile(secret, 'root:$6$secret-hash:1::\n', { mode: 0o600 });
});
afterEach(() => {
  for (const holder of holders.splice(0)) holder.kill('SIGKILL');
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** A datadir with a table file, and the agent config that points at it. */
async function makeDatadir(name: string, statusCommand = 'exit 3'): Promise<{ datadir: string; run: (op: string, params: Record<string, unknown>) => Promise<unknown> }> {
  const datadir = join(work, name);
  await mkdir(join(datadir, 'db'), { recursive: true });
  await writeFile(join(datadir, 'ibdata1'), 'rows');
  await writeFile(join(datadir, 'db', 't.ibd'), 'more rows');
  const mysql: MysqlConfig = { datadir, port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand, commandTimeoutSeconds: 5 };
  const config = { ...makeTestAgentConfig({ mysql }), stateDir: join(work, `${name}-state`) };
  return { datadir, run: async (op, params) => (await callOp(seedOps, op, createHostOpContext(config, op), params)).result };
}

async function expectUntouched(datadir: string): Promise<void> {
  expect((await readdir(datadir)).sort()).toEqual(['db', 'ibdata1']);
  expect(await readFile(join(datadir, 'ibdata1'), 'utf8')).toBe('rows');
}

/** A process with ibdata1 open, as a server would have; resolves once it holds it. */
async function holdOpen(file: string): Promise<ChildProcess> {
  const holder = spawn('bash', ['-c', `exec 3<'${file}'; echo ready; exec sleep 600`], { stdio: ['ignore', 'pipe', 'ignore'] });
  holders.push(holder);
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  return holder;
}

describe('seed-cleanup-target undoes only what this seed did', () => {
  it('no marker: the seed never emptied the target; nothing is deleted and no marker appears', async () => {
    const { datadir, run } = await makeDatadir('no-marker');
    expect(await run('seed-cleanup-target', { seedId: 'seed-a' })).toEqual({ cleaned: false, reason: expect.stringContaining(`has no ${INCOMPLETE_MARKER}: this seed never emptied it`) });
    await expectUntouched(datadir);
  });

  it("another seed's marker: left as it is", async () => {
    const { datadir, run } = await makeDatadir('other-marker');
    await writeFile(join(datadir, INCOMPLETE_MARKER), 'seed-other');
    expect(await run('seed-cleanup-target', { seedId: 'seed-a' })).toMatchObject({ cleaned: false, reason: expect.stringContaining("another seed's marker") });
    expect((await readdir(datadir)).sort()).toEqual([INCOMPLETE_MARKER, 'db', 'ibdata1']);
  });

  it('a symlinked marker: left as it is, and what it points to is neither read nor echoed', async () => {
    const { datadir, run } = await makeDatadir('link-marker');
    await symlink(secret, join(datadir, INCOMPLETE_MARKER));
    const result = (await run('seed-cleanup-target', { seedId: 'seed-a' })) as { cleaned: boolean; reason: string };
    expect(result.cleaned).toBe(false);
    expect(result.reason).toContain('a symbolic link');
    expect(result.reason).not.toContain('secret-hash');
    expect(await readFile(secret, 'utf8')).toBe('root:$6$secret-hash:1::\n');
    expect((await readdir(datadir)).sort()).toEqual([INCOMPLETE_MARKER, 'db', 'ibdata1']);
  });

  it("this seed's marker and an unused datadir: partial data removed, the marker kept", async () => {
    const { datadir, run } = await makeDatadir('own-marker');
    await writeFile(join(datadir, INCOMPLETE_MARKER), 'seed-a');
    expect(await run('seed-cleanup-target', { seedId: 'seed-a' })).toMatchObject({ cleaned: true });
    expect(await readdir(datadir)).toEqual([INCOMPLETE_MARKER]);
  });

  it("this seed's marker but a server started since (status says running): left as it is, the reason names it", async () => {
    const { datadir, run } = await makeDatadir('own-marker-running', 'exit 0');
    await writeFile(join(datadir, INCOMPLETE_MARKER), 'seed-a');
    expect(await run('seed-cleanup-target', { seedId: 'seed-a' })).toEqual({ cleaned: false, reason: expect.stringContaining('mysql.statusCommand reports MySQL running (exit 0)') });
    expect((await readdir(datadir)).sort()).toEqual([INCOMPLETE_MARKER, 'db', 'ibdata1']);
  });

  it("this seed's marker, status 'stopped', but a process has a file open: left as it is, the process named", async () => {
    const { datadir, run } = await makeDatadir('own-marker-open');
    await writeFile(join(datadir, INCOMPLETE_MARKER), 'seed-a');
    const holder = await holdOpen(join(datadir, 'ibdata1'));
    expect(await run('seed-cleanup-target', { seedId: 'seed-a' })).toEqual({ cleaned: false, reason: expect.stringContaining(`sleep (pid ${holder.pid}) has ibdata1 open`) });
    expect((await readdir(datadir)).sort()).toEqual([INCOMPLETE_MARKER, 'db', 'ibdata1']);
  });
});

describe('seed-prepare-target refuses before it marks or deletes anything', () => {
  it('a process with a file open under the datadir, the status command saying "stopped"', async () => {
    const { datadir, run } = await makeDatadir('prepare-open');
    const holder = await holdOpen(join(datadir, 'db', 't.ibd'));
    await expect(run('seed-prepare-target', { seedId: 'seed-a', requiredBytes: 1 })).rejects.toMatchObject({
      code: 'SEEDWIRE_OP_REFUSED',
      message: expect.stringContaining(`sleep (pid ${holder.pid}) has db/t.ibd open`),
    });
    await expectUntouched(datadir);
  });

  it('a status command that hangs', async () => {
    const { datadir, run } = await makeDatadir('prepare-hang', 'sleep 600');
    await expect(run('seed-prepare-target', { seedId: 'seed-a', requiredBytes: 1 })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('did not answer within 5000 ms') });
    await expectUntouched(datadir);
  });

  it('a marker that is a symlink (left by a rogue source): refused, its target untouched', async () => {
    const { datadir, run } = await makeDatadir('prepare-link');
    await symlink(secret, join(datadir, INCOMPLETE_MARKER));
    await expect(run('seed-prepare-target', { seedId: 'seed-a', requiredBytes: 1 })).rejects.toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.not.stringContaining('secret-hash') });
    expect(await readFile(secret, 'utf8')).toBe('root:$6$secret-hash:1::\n');
    expect(await readFile(join(datadir, 'ibdata1'), 'utf8')).toBe('rows');
  });

  it('when all is clear: the marker is written first, then the rest goes', async () => {
    const { datadir, run } = await makeDatadir('prepare-ok');
    await run('seed-prepare-target', { seedId: 'seed-a', requiredBytes: 1 });
    expect(await readdir(datadir)).toEqual([INCOMPLETE_MARKER]);
    expect(await readFile(join(datadir, INCOMPLETE_MARKER), 'utf8')).toBe('seed-a');
    expect(existsSync(join(datadir, 'db'))).toBe(false);
  });
});
