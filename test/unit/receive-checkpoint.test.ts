/** The receive checkpoint (agent/transfer/checkpoint.ts) against a temp stateDir. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  dropReceiveState,
  openCheckpoint,
  readResumePoint,
  recordReceived,
  requireReceived,
  RECEIVE_LEDGER_FILE,
  RECEIVE_STATE_FILE,
  type ReceiveCheckpoint,
} from '../../agent/transfer/checkpoint.js';
import { TreeDigest, type DigestEntry } from '../../agent/transfer/format.js';
import { SeedwireError } from '../../shared/errors.js';
import { rejectionOf } from '../helpers/checks.js';

let dir: string;
const open: ReceiveCheckpoint[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'seedwire-checkpoint-'));
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await rm(dir, { recursive: true, force: true });
});

async function start(seedId: string, resume: boolean): Promise<ReceiveCheckpoint> {
  const checkpoint = await openCheckpoint({ stateDir: dir, seedId, resume });
  open.push(checkpoint);
  return checkpoint;
}

function entry(path: string, content: string): DigestEntry {
  return { path, size: Buffer.byteLength(content), sha256: createHash('sha256').update(content).digest('hex') };
}

function summaryOf(entries: DigestEntry[]): { files: number; bytes: number; digest: string } {
  const digest = new TreeDigest();
  for (const e of entries) digest.add(e);
  return digest.summary();
}


describe('receive checkpoint', () => {
  it('commits a resume point and its ledger, and a resume reads them back', async () => {
    const first = await start('seed-1', false);
    expect(first.resumed).toBeNull();
    const a = entry('a', 'alpha');
    first.addVerified(a);
    const current = { path: 'b', mode: 0o640, mtimeMs: 1000, size: 10, dataStart: 120, position: 4 };
    await first.commit({ committed: 124, current }, Promise.resolve());
    expect(first.committed).toBe(124);
    await first.close();

    const again = await start('seed-1', true);
    expect(again.resumed).toEqual({ committed: 124, current, entries: [a], done: null });
    expect(again.committed).toBe(124);
    expect(again.verifiedBytes).toBe(5);
    expect(await readResumePoint(dir, 'seed-1')).toEqual(again.resumed);
  });

  it('writes the state only after what it covers is durable; a failed commit leaves the previous point and refuses later ones', async () => {
    const checkpoint = await start('seed-1', false);
    await checkpoint.commit({ committed: 10, current: null }, Promise.resolve());
    const failing = checkpoint.commit({ committed: 20, current: null }, Promise.reject(new Error('EIO on fdatasync')));
    await expect(failing).rejects.toThrow('EIO on fdatasync');
    expect((await readResumePoint(dir, 'seed-1'))?.committed).toBe(10);
    expect(checkpoint.failed).toBe(true);
    expect(() => checkpoint.throwIfFailed()).toThrow('EIO on fdatasync');
    await expect(checkpoint.commit({ committed: 30, current: null }, Promise.resolve())).rejects.toThrow('EIO on fdatasync');
    expect((await readResumePoint(dir, 'seed-1'))?.committed).toBe(10);
  });

  it('batches background commits by stream bytes and by files not yet durable, one at a time', async () => {
    const checkpoint = await openCheckpoint({ stateDir: dir, seedId: 'seed-1', resume: false, commitEveryBytes: 100, maxUnsyncedFiles: 3 });
    open.push(checkpoint);
    const commits: number[] = [];
    const commitAt = (offset: number) => () => {
      commits.push(offset);
      return checkpoint.commit({ committed: offset, current: null }, Promise.resolve());
    };
    checkpoint.commitWhenDue(50, 0, commitAt(50)); // not due
    checkpoint.commitWhenDue(100, 0, commitAt(100)); // due by bytes
    checkpoint.commitWhenDue(250, 0, commitAt(250)); // one is running: skipped
    await checkpoint.settle();
    checkpoint.commitWhenDue(120, 3, commitAt(120)); // due by files
    await checkpoint.settle();
    expect(commits).toEqual([100, 120]);
    expect(checkpoint.committed).toBe(120);
  });

  it('cuts ledger lines appended after the last state write when resuming', async () => {
    const first = await start('seed-1', false);
    const a = entry('a', 'alpha');
    first.addVerified(a);
    await first.commit({ committed: 50, current: null }, Promise.resolve());
    await first.close();
    const ledger = join(dir, RECEIVE_LEDGER_FILE);
    await writeFile(ledger, `${await readFile(ledger, 'utf8')}{"path":"b","size":1,"sha256":"${'0'.repeat(64)}"}\n`);
    const again = await start('seed-1', true);
    expect(again.resumed?.entries).toEqual([a]);
    const b = entry('b', 'bravo');
    again.addVerified(b);
    await again.commit({ committed: 90, current: null }, Promise.resolve());
    const lines = (await readFile(ledger, 'utf8')).trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as DigestEntry).path)).toEqual(['a', 'b']);
  });

  it('verifies the end record against its own digest, and finalize against the source digest', async () => {
    const checkpoint = await start('seed-1', false);
    const entries = [entry('a', 'alpha'), entry('d/b', 'bravo')];
    for (const e of entries) checkpoint.addVerified(e);
    const want = summaryOf(entries);
    const wrong = { ...want, digest: '0'.repeat(64) };
    expect(() => checkpoint.verifyEnd(wrong)).toThrow(/seed digest mismatch: received 2 files, 10 bytes/);
    expect(() => checkpoint.verifyEnd({ ...want, files: 3 })).toThrow(SeedwireError);
    const summary = checkpoint.verifyEnd(want);
    expect(summary).toEqual(want);

    expect((await rejectionOf(requireReceived(dir, 'seed-1', want.digest))).message).toMatch(/has not been received completely/);
    await checkpoint.commit({ committed: 500, current: null }, Promise.resolve(), summary);
    expect(await requireReceived(dir, 'seed-1', want.digest)).toEqual(want);
    const mismatch = await rejectionOf(requireReceived(dir, 'seed-1', wrong.digest));
    expect(mismatch.code).toBe('SEEDWIRE_VERIFY_FAILED');
    expect(mismatch.message).toMatch(/differs from the source's 0{64}; the target keeps its \.seedwire-incomplete/);
    expect((await rejectionOf(requireReceived(dir, 'other-seed', want.digest))).message).toMatch(/seed other-seed has not been received completely/);
  });

  it('records a stream that cannot resume as received, and drops every trace', async () => {
    const summary = { files: 3, bytes: 1234, digest: 'f'.repeat(64) };
    await recordReceived(dir, 'seed-2', summary);
    expect(await requireReceived(dir, 'seed-2', summary.digest)).toEqual(summary);
    const resumed = await start('seed-2', true);
    expect(resumed.resumed?.done).toEqual(summary);
    await resumed.close();
    // A write that never got renamed (a crash mid-commit) leaves a temporary file of its own name.
    const stale = join(dir, `${RECEIVE_STATE_FILE}.0a1b2c.tmp`);
    await writeFile(stale, '{');
    await dropReceiveState(dir);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(join(dir, RECEIVE_STATE_FILE))).toBe(false);
    expect(existsSync(join(dir, RECEIVE_LEDGER_FILE))).toBe(false);
    expect(await readResumePoint(dir, 'seed-2')).toBeNull();
  });

  it('concurrent state writes each use their own temporary file, so none loses its rename', async () => {
    const summaries = Array.from({ length: 8 }, (_, i) => ({ files: i, bytes: i, digest: String(i).repeat(64) }));
    await Promise.all(summaries.map((summary) => recordReceived(dir, 'seed-3', summary)));
    expect(summaries).toContainEqual((await readResumePoint(dir, 'seed-3'))?.done);
  });

  it("another seed's state is not this one's: a resume starts over and drops it", async () => {
    const first = await start('seed-1', false);
    await first.commit({ committed: 77, current: null }, Promise.resolve());
    await first.close();
    expect(await readResumePoint(dir, 'seed-2')).toBeNull();
    const other = await start('seed-2', true);
    expect(other.resumed).toBeNull();
    expect(other.discarded).toBeNull();
    expect(await readResumePoint(dir, 'seed-1')).toBeNull();
  });

  describe('a torn or garbage state is refused naming the file', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['torn JSON', '{"version":1,"seedId":"seed-1","commi', /seed-receive\.json is unreadable: it is not JSON/],
      ['not a state', '{"hello":"world"}', /seed-receive\.json is unreadable: version/],
      ['a negative offset', JSON.stringify({ version: 1, seedId: 'seed-1', committed: -5, current: null, ledgerEntries: 0, done: null, updatedAt: 'x' }), /unreadable: committed/],
      [
        'a resume point past its file',
        JSON.stringify({ version: 1, seedId: 'seed-1', committed: 9, current: { path: 'a', mode: 420, mtimeMs: 0, size: 4, dataStart: 0, position: 9 }, ledgerEntries: 0, done: null, updatedAt: 'x' }),
        /the resume point of a is past its size/,
      ],
      ['more ledger lines than there are', JSON.stringify({ version: 1, seedId: 'seed-1', committed: 9, current: null, ledgerEntries: 2, done: null, updatedAt: 'x' }), /seed-receive\.ledger is unreadable: it holds 0 whole lines, the state counts 2/],
    ];
    for (const [name, text, message] of cases) {
      it(name, async () => {
        await writeFile(join(dir, RECEIVE_STATE_FILE), text);
        const error = await rejectionOf(readResumePoint(dir, 'seed-1'));
        expect(error.code).toBe('SEEDWIRE_VERIFY_FAILED');
        expect(error.message).toMatch(message);
        // finalize refuses, keeping the marker
        expect((await rejectionOf(requireReceived(dir, 'seed-1', 'abc'))).message).toMatch(/unreadable.*; the target keeps its \.seedwire-incomplete/s);
        // a resume starts over, saying why, and the bad state is gone
        const checkpoint = await start('seed-1', true);
        expect(checkpoint.resumed).toBeNull();
        expect(checkpoint.discarded).toMatch(message);
        expect(await readResumePoint(dir, 'seed-1')).toBeNull();
      });
    }

    it('a garbage ledger line', async () => {
      await writeFile(join(dir, RECEIVE_STATE_FILE), JSON.stringify({ version: 1, seedId: 'seed-1', committed: 9, current: null, ledgerEntries: 1, done: null, updatedAt: 'x' }));
      await writeFile(join(dir, RECEIVE_LEDGER_FILE), '{"path":"a","size":"big"}\n');
      expect((await rejectionOf(readResumePoint(dir, 'seed-1'))).message).toMatch(/seed-receive\.ledger is unreadable: line 1 is not a \{path, size, sha256\} entry/);
    });
  });
});
