import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentConfig } from '../../agent/config/schema.js';
import type { OpContext } from '../../agent/ops/types.js';
import { seedOps } from '../../agent/ops/seed.js';
import { openCheckpoint } from '../../agent/transfer/checkpoint.js';
import { encodeRecordHeader, type RecordHeader } from '../../agent/transfer/format.js';
import { receiveTree } from '../../agent/transfer/receive.js';
import { sendTree } from '../../agent/transfer/send.js';
import type { Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { corruptFrame, createStreamPair, type StreamPair, type StreamPairOptions } from '../helpers/stream-pair.js';

let work: string;
let source: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'seedwire-transfer-'));
  source = join(work, 'source');
  await mkdir(join(source, 'db1', 'nested', 'deeper'), { recursive: true });
  await mkdir(join(source, 'empty-dir'));
  await writeFile(join(source, 'ibdata1'), randomBytes(50 * 1024 * 1024));
  await writeFile(join(source, 'db1', 't1.ibd'), Buffer.alloc(3 * 1024 * 1024 + 17, 'mysql rows '));
  await writeFile(join(source, 'db1', 'db.opt'), 'default-character-set=utf8mb4\n');
  await writeFile(join(source, 'db1', 'empty.frm'), '');
  await writeFile(join(source, 'db1', 'nested', 'deeper', 'x.ibd'), randomBytes(70_000));
  await symlink('db1/db.opt', join(source, 'link-to-opt'));
  // excluded at every depth
  await writeFile(join(source, 'auto.cnf'), '[auto]\nserver-uuid=1\n');
  await writeFile(join(source, 'host.pid'), '123');
  await writeFile(join(source, 'mysqld.sock.lock'), '1');
  await writeFile(join(source, INCOMPLETE_MARKER), 'old');
  await writeFile(join(source, 'db1', 'nested', 'auto.cnf'), 'x');
}, 60_000);

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function freshDirs(name: string): Promise<{ target: string; state: string }> {
  const target = join(work, `${name}-target`);
  const state = join(work, `${name}-state`);
  await mkdir(target, { recursive: true });
  return { target, state };
}

/** path → sha256 (files), 'dir', or 'link:target' for every entry under root. */
async function describeTree(root: string, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, r));
    if (st.isSymbolicLink()) out[r] = `link:${await readlink(join(root, r))}`;
    else if (st.isDirectory()) {
      out[r] = 'dir';
      Object.assign(out, await describeTree(root, r));
    } else out[r] = createHash('sha256').update(await readFile(join(root, r))).digest('hex');
  }
  return out;
}

interface TransferRun {
  pair: StreamPair;
  startOffset: number;
  send: Promise<unknown>;
  receive: Promise<unknown>;
}

function startTransfer(target: string, state: string, codec: Codec, opts: { resume?: boolean; pair?: StreamPairOptions; seedId?: string } = {}): TransferRun {
  const pair = createStreamPair(opts.pair);
  const controller = new AbortController();
  let startOffset = -1;
  let resolveStart!: (offset: number) => void;
  const started = new Promise<number>((resolve) => {
    resolveStart = resolve;
  });
  const receive = openCheckpoint({ stateDir: state, seedId: opts.seedId ?? 'seed-1', resume: opts.resume ?? false }).then((checkpoint) =>
    receiveTree({
      root: target,
      port: pair.receive,
      checkpoint,
      signal: controller.signal,
      onStart: (offset) => {
        startOffset = offset;
        resolveStart(offset);
      },
    }),
  );
  const send = started.then((offset) =>
    sendTree({ root: source, port: pair.send, offset, compression: codec, signal: controller.signal, hashCachePath: join(state, 'send-cache') }),
  );
  // Whichever side fails first stops the other, as the controller would.
  receive.catch(() => pair.cut('receiver failed'));
  send.then(
    () => pair.send.close(),
    () => pair.cut('sender failed'),
  );
  const run: TransferRun = { pair, startOffset, send, receive };
  // `started` only ever resolves (nothing rejects it).
  void started.then((o) => {
    run.startOffset = o;
  });
  return run;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<SeedwireError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SeedwireError);
  expect((error as SeedwireError).code).toBe(code);
  return error as SeedwireError;
}

describe('seed transfer through a credit-honouring relay', () => {
  for (const codec of ['none', 'gzip', 'zstd'] as const) {
    it(`copies the tree exactly with codec ${codec}, without excluded files`, async () => {
      const { target, state } = await freshDirs(`full-${codec}`);
      const run = startTransfer(target, state, codec);
      const [sent, received] = await Promise.all([run.send, run.receive]);
      expect(received).toEqual(sent);
      const want = await describeTree(source);
      for (const excluded of ['auto.cnf', 'host.pid', 'mysqld.sock.lock', INCOMPLETE_MARKER, 'db1/nested/auto.cnf']) delete want[excluded];
      expect(await describeTree(target)).toEqual(want);
      expect(received).toMatchObject({ files: 5, bytes: 50 * 1024 * 1024 + 3 * 1024 * 1024 + 17 + 30 + 70_000 });
      // The relay never held more than the receiver's largest window.
      expect(run.pair.stats.maxQueuedBytes).toBeLessThanOrEqual(LIMITS.windowMaxBytes);
      expect(Math.round((await lstat(join(target, 'db1', 'db.opt'))).mtimeMs)).toBe(Math.trunc((await lstat(join(source, 'db1', 'db.opt'))).mtimeMs));
    });
  }

  it('resumes after the link drops mid-transfer, re-sending less than two windows', async () => {
    const { target, state } = await freshDirs('resume');
    const cutAt = 20 * 1024 * 1024 + 12345;
    const first = startTransfer(target, state, 'zstd', { pair: { cutAfterBytes: cutAt } });
    await expectCode(first.receive, 'SEEDWIRE_DISCONNECTED');
    await first.send.catch(() => undefined);
    const firstSentEnd = first.pair.stats.endOffset;

    const second = startTransfer(target, state, 'zstd', { resume: true });
    const [sent, received] = await Promise.all([second.send, second.receive]);
    expect(received).toEqual(sent);
    expect(second.startOffset).toBeGreaterThan(0);
    expect(second.startOffset).toBeLessThanOrEqual(firstSentEnd);
    expect(second.pair.stats.firstOffset).toBe(second.startOffset);
    expect(firstSentEnd - second.startOffset).toBeLessThan(2 * LIMITS.windowMaxBytes);
    const want = await describeTree(source);
    for (const excluded of ['auto.cnf', 'host.pid', 'mysqld.sock.lock', INCOMPLETE_MARKER, 'db1/nested/auto.cnf']) delete want[excluded];
    expect(await describeTree(target)).toEqual(want);
  });

  it('fails with SEEDWIRE_VERIFY_FAILED naming the file when a chunk is corrupted in flight', async () => {
    const { target, state } = await freshDirs('corrupt');
    // Frame 10 lies inside ibdata1 (the first, 50 MB file in stream order).
    const run = startTransfer(target, state, 'none', { pair: { tamper: (frame, index) => (index === 10 ? corruptFrame(frame, 1000) : frame) } });
    const error = await expectCode(run.receive, 'SEEDWIRE_VERIFY_FAILED');
    expect(error.message).toContain('ibdata1');
    await run.send.catch(() => undefined);
  });
});

/** Builds a hand-made stream: records, file data and (correct) trailers. */
function craftStream(records: Array<{ header: RecordHeader; data?: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const { header, data } of records) {
    parts.push(encodeRecordHeader(header));
    if (header.type === 'file') {
      const bytes = data ?? Buffer.alloc(0);
      parts.push(bytes, createHash('sha256').update(bytes).digest());
    }
  }
  return Buffer.concat(parts);
}

async function receiveCrafted(target: string, state: string, stream: Buffer, options: { allowExternalSymlinks?: boolean; maxBytes?: number } = {}): Promise<unknown> {
  const pair = createStreamPair({ initialLimit: stream.length });
  const checkpoint = await openCheckpoint({ stateDir: state, seedId: 'evil', resume: false });
  const receive = receiveTree({ root: target, port: pair.receive, checkpoint, signal: new AbortController().signal, ...options });
  pair.send.send(0, stream.length, 'none', stream);
  pair.send.close();
  return receive;
}

describe('path safety', () => {
  const file = (path: string): RecordHeader => ({ type: 'file', path, mode: 0o644, mtimeMs: 0, size: 4 });

  it("refuses '../x' and writes nothing outside the root", async () => {
    const { target, state } = await freshDirs('escape-dotdot');
    const error = await expectCode(receiveCrafted(target, state, craftStream([{ header: file('../escaped-x'), data: Buffer.from('evil') }])), 'SEEDWIRE_PATH_ESCAPE');
    expect(error.message).toContain('../escaped-x');
    expect(existsSync(join(work, 'escaped-x'))).toBe(false);
  });

  it('refuses an absolute path', async () => {
    const { target, state } = await freshDirs('escape-abs');
    const outside = join(work, 'escaped-abs');
    await expectCode(receiveCrafted(target, state, craftStream([{ header: file(outside), data: Buffer.from('evil') }])), 'SEEDWIRE_PATH_ESCAPE');
    expect(existsSync(outside)).toBe(false);
  });

  it('refuses a file under a symlinked directory, even when external symlinks are allowed', async () => {
    const { target, state } = await freshDirs('escape-link');
    const outsideDir = join(work, 'outside-dir');
    await mkdir(outsideDir);
    const stream = craftStream([
      { header: { type: 'symlink', path: 'sub', mode: 0o777, mtimeMs: 0, target: outsideDir } },
      { header: file('sub/evil'), data: Buffer.from('evil') },
    ]);
    await expectCode(receiveCrafted(target, state, stream, { allowExternalSymlinks: true }), 'SEEDWIRE_PATH_ESCAPE');
    expect(await readdir(outsideDir)).toEqual([]);
    // The symlink itself was allowed (never followed).
    expect((await lstat(join(target, 'sub'))).isSymbolicLink()).toBe(true);
  });

  it('strips setuid, setgid and sticky bits', async () => {
    const { target, state } = await freshDirs('modes');
    const data = Buffer.from('tool');
    const stream = craftStream([
      { header: { type: 'dir', path: 'd', mode: 0o3777, mtimeMs: 0 } },
      { header: { type: 'file', path: 'd/suid', mode: 0o6755, mtimeMs: 0, size: data.length }, data },
    ]);
    const digest = createHash('sha256').update(`d/suid\0${data.length}\0${createHash('sha256').update(data).digest('hex')}\n`).digest('hex');
    const end = encodeRecordHeader({ type: 'end', files: 1, bytes: data.length, digest });
    await receiveCrafted(target, state, Buffer.concat([stream, end]));
    expect((await lstat(join(target, 'd'))).mode & 0o7777).toBe(0o777);
    expect((await lstat(join(target, 'd', 'suid'))).mode & 0o7777).toBe(0o755);
  });

  it('refuses a declared size above maxBytes before creating the file', async () => {
    const { target, state } = await freshDirs('too-big');
    const stream = craftStream([{ header: { type: 'file', path: 'ibdata1', mode: 0o644, mtimeMs: 0, size: 4 }, data: Buffer.from('evil') }]);
    const error = await expectCode(receiveCrafted(target, state, stream, { maxBytes: 3 }), 'SEEDWIRE_PATH_ESCAPE');
    expect(error.message).toContain('ibdata1');
    expect(existsSync(join(target, 'ibdata1'))).toBe(false);
  });

  it('refuses a symlink leading outside the datadir before creating it', async () => {
    const { target, state } = await freshDirs('escape-link-out');
    const outsideDir = join(work, 'outside-dir-2');
    await mkdir(outsideDir);
    const stream = craftStream([{ header: { type: 'symlink', path: 'sub', mode: 0o777, mtimeMs: 0, target: outsideDir } }]);
    const error = await expectCode(receiveCrafted(target, state, stream), 'SEEDWIRE_PATH_ESCAPE');
    expect(error.message).toContain('outside the datadir');
    expect(existsSync(join(target, 'sub'))).toBe(false);
  });

  it('refuses a file under a symlink that stays inside', async () => {
    const { target, state } = await freshDirs('escape-link-in');
    const stream = craftStream([
      { header: { type: 'dir', path: 'd', mode: 0o755, mtimeMs: 0 } },
      { header: { type: 'symlink', path: 'in', mode: 0o777, mtimeMs: 0, target: 'd' } },
      { header: file('in/evil'), data: Buffer.from('evil') },
    ]);
    await expectCode(receiveCrafted(target, state, stream), 'SEEDWIRE_PATH_ESCAPE');
    expect(await readdir(join(target, 'd'))).toEqual([]);
  });

  it('refuses writing through a symlink at the file itself', async () => {
    const { target, state } = await freshDirs('escape-file-link');
    const outsideFile = join(work, 'outside-file');
    await writeFile(outsideFile, 'keep');
    const stream = craftStream([
      { header: { type: 'symlink', path: 'f', mode: 0o777, mtimeMs: 0, target: outsideFile } },
      { header: file('f'), data: Buffer.from('evil') },
    ]);
    await expectCode(receiveCrafted(target, state, stream, { allowExternalSymlinks: true }), 'SEEDWIRE_PATH_ESCAPE');
    expect(await readFile(outsideFile, 'utf8')).toBe('keep');
  });
});

function makeContext(config: Partial<AgentConfig>, progress: Array<Record<string, unknown>> = []): OpContext {
  return {
    callId: 'c1',
    signal: new AbortController().signal,
    log: pino({ level: 'silent' }),
    config: { customCommands: {}, allowArbitraryCommands: false, advanced: {}, token: 't', id: 'a', hostname: 'h', datacenter: null, stateDir: join(work, 'agent-state'), controller: 'ws://x', ...config } as AgentConfig,
    output: () => undefined,
    progress: (data) => progress.push(data),
    run: async (command) => {
      const { runCommand } = await import('../../agent/exec/run.js');
      return runCommand(command);
    },
    streams: { openSend: () => { throw new Error('unused'); }, openReceive: () => { throw new Error('unused'); } },
    refreshFacts: () => undefined,
  };
}

describe('seed-prepare-target', () => {
  const prepare = seedOps.find((op) => op.name === 'seed-prepare-target');

  it('refuses with SEEDWIRE_NO_SPACE when the seed needs more than is free, deleting nothing', async () => {
    const datadir = join(work, 'prepare-datadir');
    await mkdir(join(datadir, 'mysql'), { recursive: true });
    await writeFile(join(datadir, 'mysql', 'user.frm'), 'keep me');
    const ctx = makeContext({ mysql: { datadir, port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand: 'false', commandTimeoutSeconds: 10 } });
    await expectCode(prepare!.run(ctx, { seedId: 's1', requiredBytes: Number.MAX_SAFE_INTEGER }), 'SEEDWIRE_NO_SPACE');
    expect(await readFile(join(datadir, 'mysql', 'user.frm'), 'utf8')).toBe('keep me');
    expect(existsSync(join(datadir, INCOMPLETE_MARKER))).toBe(false);
  });

  it('refuses while MySQL runs', async () => {
    const datadir = join(work, 'prepare-running');
    await mkdir(datadir, { recursive: true });
    await writeFile(join(datadir, 'ibdata1'), 'keep');
    const ctx = makeContext({ mysql: { datadir, port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand: 'true', commandTimeoutSeconds: 10 } });
    await expectCode(prepare!.run(ctx, { seedId: 's1', requiredBytes: 0 }), 'SEEDWIRE_OP_REFUSED');
    expect(await readFile(join(datadir, 'ibdata1'), 'utf8')).toBe('keep');
  });

  it('writes the marker and empties the datadir when there is room', async () => {
    const datadir = join(work, 'prepare-ok');
    await mkdir(join(datadir, 'db'), { recursive: true });
    await writeFile(join(datadir, 'db', 't.ibd'), 'old');
    const ctx = makeContext({ mysql: { datadir, port: 3306, startCommand: 'true', stopCommand: 'true', statusCommand: 'false', commandTimeoutSeconds: 10 } });
    const { result } = await prepare!.run(ctx, { seedId: 's1', requiredBytes: 1 });
    expect((result as { freeBytes: number }).freeBytes).toBeGreaterThan(0);
    expect(await readdir(datadir)).toEqual([INCOMPLETE_MARKER]);
    expect(await readFile(join(datadir, INCOMPLETE_MARKER), 'utf8')).toBe('s1');
  });
});
