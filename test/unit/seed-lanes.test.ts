/**
 * Parallel lanes: the assignment of a tree to lanes (pure), and, over real temp dirs and the real
 * sendTree/receiveTree joined by in-memory port pairs, that every lane cut at an arbitrary point
 * and resumed from its own committed offset reproduces the exact tree.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint, readResumePoint, requireReceived } from '../../agent/transfer/checkpoint.js';
import { SeedStreamDecoder } from '../../agent/transfer/decoder.js';
import { encodeRecordHeader, type EntryHeader, type RangeHeader, type TreeSummary } from '../../agent/transfer/format.js';
import { LaneAssigner, type LaneUnit } from '../../agent/transfer/lanes.js';
import { ReceiveTurns } from '../../agent/transfer/receive-turns.js';
import { receiveTree } from '../../agent/transfer/receive.js';
import { sendTree } from '../../agent/transfer/send.js';
import { walkTree } from '../../agent/transfer/walk.js';
import { SeedwireError } from '../../shared/errors.js';
import { combineLaneSummaries, type Lane } from '../../shared/lanes.js';
import { rejectionOf } from '../helpers/checks.js';
import { corruptFrame, createStreamPair, type StreamPairOptions } from '../helpers/stream-pair.js';

function file(path: string, size: number): EntryHeader {
  return { type: 'file', path, mode: 0o640, mtimeMs: 1000, size };
}

/** A tree's headers in walk order: a big file, directories, many small files, a symlink. */
function sampleHeaders(): EntryHeader[] {
  const out: EntryHeader[] = [{ type: 'dir', path: 'db', mode: 0o755, mtimeMs: 1 }];
  for (let i = 0; i < 40; i += 1) out.push(file(`db/t${String(i).padStart(2, '0')}.ibd`, (i * 7919) % 5000));
  out.push(file('ibdata1', 100_000), { type: 'symlink', path: 'link', mode: 0o777, mtimeMs: 1, target: 'db' }, file('ib_logfile0', 33_333));
  return out;
}

function assignAll(count: number, headers: EntryHeader[], rangeBytes: number): LaneUnit[] {
  const assigner = new LaneAssigner({ count, rangeBytes, recordCost: 100 });
  return headers.flatMap((h) => assigner.assign(h));
}

describe('lane assignment', () => {
  it('is the same plan for the same walk, and each lane computes its own part of it', () => {
    const headers = sampleHeaders();
    const first = assignAll(4, headers, 10_000);
    expect(assignAll(4, headers, 10_000)).toEqual(first);
    for (let lane = 0; lane < 4; lane += 1) {
      const assigner = new LaneAssigner({ count: 4, rangeBytes: 10_000, recordCost: 100 });
      const mine = headers.flatMap((h) => assigner.unitsFor(h, lane));
      expect(mine).toEqual(first.filter((u) => u.lane === 'all' || u.lane === lane).map((u) => u.header));
    }
  });

  it('one lane is the tree as it is: no ranges, nothing left out', () => {
    const headers = sampleHeaders();
    expect(assignAll(1, headers, 10).map((u) => u.header)).toEqual(headers);
  });

  it('splits a large file into ranges covering it exactly once, and sends directories on every lane', () => {
    const units = assignAll(3, sampleHeaders(), 10_000);
    const ranges = units.filter((u): u is LaneUnit & { header: RangeHeader } => u.header.type === 'range' && u.header.path === 'ibdata1');
    expect(ranges.map((r) => [r.header.offset, r.header.length])).toEqual(Array.from({ length: 10 }, (_, i) => [i * 10_000, 10_000]));
    expect(new Set(ranges.map((r) => r.lane)).size).toBe(3);
    const tail = units.filter((u) => u.header.type === 'range' && u.header.path === 'ib_logfile0').map((u) => (u.header as RangeHeader).length);
    expect(tail).toEqual([10_000, 10_000, 10_000, 3_333]);
    expect(units.filter((u) => u.header.type === 'dir').every((u) => u.lane === 'all')).toBe(true);
    expect(units.some((u) => u.header.type === 'file' && u.header.size > 10_000)).toBe(false);
  });

  it('balances bytes: any two lanes differ by at most one unit', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 80 }), fc.integer({ min: 2, max: 8 }), (sizes, count) => {
        const rangeBytes = 16_384;
        const assigner = new LaneAssigner({ count, rangeBytes, recordCost: 100 });
        sizes.forEach((size, i) => assigner.assign(file(`f${i}`, size)));
        const loads = assigner.loads;
        expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(rangeBytes + 100);
      }),
    );
  });
});

// ---- lanes over real directories ------------------------------------------------------------

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'seedwire-lanes-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

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
    } else out[r] = `${(st.mode & 0o777).toString(8)}:${Math.round(st.mtimeMs)}:${createHash('sha256').update(await readFile(join(root, r))).digest('hex')}`;
  }
  return out;
}

interface LaneRun {
  sent: TreeSummary | null;
  received: TreeSummary | null;
}

/** One attempt of one lane: the receiver says where to start, the sender sends from there. */
async function runLane(root: string, target: string, stateDir: string, lane: Lane | undefined, resume: boolean, rangeBytes: number, pair: StreamPairOptions): Promise<LaneRun> {
  const ports = createStreamPair(pair);
  const controller = new AbortController();
  const checkpoint = await openCheckpoint({ stateDir, seedId: 'seed-lanes', resume, commitEveryBytes: 4096, ...(lane ? { lane } : {}) });
  let start!: (offset: number) => void;
  const started = new Promise<number>((resolve) => {
    start = resolve;
  });
  const receive = receiveTree({ root: target, port: ports.receive, checkpoint, signal: controller.signal, onStart: (offset) => start(offset), windowInitialBytes: 8192, windowMaxBytes: 32_768 });
  receive.catch(() => ports.cut('receiver failed'));
  const send = started.then((offset) => sendTree({ root, port: ports.send, offset, compression: 'none', signal: controller.signal, chunkBytes: 1024, rangeBytes, ...(lane ? { lane } : {}) }));
  send.then(
    () => ports.send.close(),
    () => ports.cut('sender failed'),
  );
  const [sent, received] = await Promise.allSettled([send, receive]);
  for (const r of [sent, received]) {
    if (r.status === 'rejected' && !(r.reason instanceof SeedwireError && r.reason.code === 'SEEDWIRE_DISCONNECTED')) throw r.reason;
  }
  return { sent: sent.status === 'fulfilled' ? sent.value : null, received: received.status === 'fulfilled' ? received.value : null };
}

const NAME = fc.stringMatching(/^[a-z0-9_]{1,6}$/);
const TREE = fc.array(
  fc.record({ dir: fc.constantFrom('', 'a', 'a/b', 'c'), name: NAME, size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1000, max: 40_000 })), seed: fc.integer({ min: 0, max: 255 }) }),
  { minLength: 1, maxLength: 12 },
);

async function makeTree(root: string, files: Array<{ dir: string; name: string; size: number; seed: number }>): Promise<void> {
  await mkdir(join(root, 'a', 'b'), { recursive: true });
  await mkdir(join(root, 'c'), { recursive: true });
  for (const f of files) {
    const data = Buffer.alloc(f.size);
    for (let i = 0; i < f.size; i += 1) data[i] = (f.seed + i * 31 + (i >> 7)) & 0xff;
    await writeFile(join(root, f.dir, `f_${f.name}`), data, { mode: 0o640 });
    // Whole seconds: the stream carries whole milliseconds, which utimes may store a hair lower.
    await utimes(join(root, f.dir, `f_${f.name}`), 1_700_000_000 + f.seed, 1_700_000_000 + f.seed);
  }
  await symlink('a/b', join(root, 'link'));
}

describe('lanes resumed from arbitrary committed offsets', () => {
  it('reproduce the exact tree, and both sides combine the same seed digest', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(TREE, fc.integer({ min: 1, max: 4 }), fc.array(fc.double({ min: 0, max: 1.2, noNaN: true }), { minLength: 4, maxLength: 4 }), async (files, count, cuts) => {
        run += 1;
        const base = join(work, `run-${run}`);
        const root = join(base, 'source');
        const target = join(base, 'target');
        const stateDir = join(base, 'state');
        await mkdir(target, { recursive: true });
        await makeTree(root, files);
        const rangeBytes = 4096;
        const lanes: Array<Lane | undefined> = count === 1 ? [undefined] : Array.from({ length: count }, (_, index) => ({ index, count }));
        // A first attempt on every lane at once, each cut after its own share of its stream.
        const lengths = await Promise.all(lanes.map(async (lane) => laneLength(root, lane, rangeBytes)));
        const first = await Promise.all(lanes.map((lane, i) => runLane(root, target, stateDir, lane, false, rangeBytes, { cutAfterBytes: Math.floor((lengths[i] as number) * (cuts[i] as number)) })));
        // Then each unfinished lane resumes from its own committed offset.
        const second = await Promise.all(lanes.map((lane, i) => ((first[i] as LaneRun).received ? Promise.resolve(first[i] as LaneRun) : runLane(root, target, stateDir, lane, true, rangeBytes, {}))));
        const sent = second.map((r) => r.sent ?? (first[second.indexOf(r)] as LaneRun).sent);
        const received = second.map((r) => r.received);
        expect(received.every((r) => r !== null)).toBe(true);
        const seedReceived = combineLaneSummaries(received as TreeSummary[]);
        expect(combineLaneSummaries(sent as TreeSummary[])).toEqual(seedReceived);
        expect(seedReceived.files).toBe(files.length === 0 ? 0 : (await describeFiles(root)).length);
        expect(await describeTree(target)).toEqual(await describeTree(root));
        // What seed-finalize-target checks: every lane complete, the combination the source's.
        await expect(requireReceived(stateDir, 'seed-lanes', seedReceived.digest, count)).resolves.toEqual(seedReceived);
        await rm(base, { recursive: true, force: true });
      }),
      { numRuns: 25 },
    );
  }, 120_000);

  it('keeps each lane\'s resume point apart, and a finalize refuses while one lane is incomplete', async () => {
    const base = join(work, 'apart');
    const root = join(base, 'source');
    const target = join(base, 'target');
    const stateDir = join(base, 'state');
    await mkdir(target, { recursive: true });
    await makeTree(root, [
      { dir: '', name: 'big', size: 30_000, seed: 1 },
      { dir: 'a', name: 'x', size: 20_000, seed: 2 },
    ]);
    const lanes: Lane[] = [0, 1].map((index) => ({ index, count: 2 }));
    const done = await runLane(root, target, stateDir, lanes[0], false, 4096, {});
    const cut = await runLane(root, target, stateDir, lanes[1], false, 4096, { cutAfterBytes: 9000 });
    expect(done.received).not.toBeNull();
    expect(cut.received).toBeNull();
    const point = await readResumePoint(stateDir, 'seed-lanes', lanes[1]);
    expect(point?.done).toBeNull();
    expect((await readResumePoint(stateDir, 'seed-lanes', lanes[0]))?.done).toEqual(done.received);
    // A one-lane state of the same seed is not a lane's state.
    expect(await readResumePoint(stateDir, 'seed-lanes')).toBeNull();
    await expect(requireReceived(stateDir, 'seed-lanes', 'x', 2)).rejects.toThrow(/lane 1 of 2/);
    const resumed = await runLane(root, target, stateDir, lanes[1], true, 4096, {});
    expect(resumed.received).not.toBeNull();
    expect(await describeTree(target)).toEqual(await describeTree(root));
  });
});

async function describeFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of walkTree(root)) if (entry.header.type === 'file') out.push(entry.header.path);
  return out;
}

/** The byte length of a lane's stream (a full send into a pair that never cuts). */
async function laneLength(root: string, lane: Lane | undefined, rangeBytes: number): Promise<number> {
  const ports = createStreamPair({ initialLimit: Number.MAX_SAFE_INTEGER });
  const drain = (async () => {
    for await (const _chunk of ports.receive.chunks()) {
      // only the offsets matter
    }
  })();
  await sendTree({ root, port: ports.send, offset: 0, compression: 'none', signal: new AbortController().signal, rangeBytes, ...(lane ? { lane } : {}) });
  ports.send.close();
  await drain;
  return ports.stats.endOffset;
}

describe('range records on the wire', () => {
  const range = (over: Partial<RangeHeader> = {}): RangeHeader => ({ type: 'range', path: 'ibdata1', mode: 0o640, mtimeMs: 1, size: 100, offset: 40, length: 20, ...over });

  it('decode to an entry, data and a trailer, and count their length against maxBytes', () => {
    const decoder = new SeedStreamDecoder({ maxBytes: 30 });
    const head = encodeRecordHeader(range());
    decoder.push(Buffer.concat([head, Buffer.alloc(20, 7), Buffer.alloc(32, 1)]));
    expect(decoder.next()).toMatchObject({ kind: 'entry', header: range() });
    expect(decoder.next()).toMatchObject({ kind: 'data', end: head.length + 20 });
    expect(decoder.next()).toMatchObject({ kind: 'trailer' });
    const over = new SeedStreamDecoder({ maxBytes: 19 });
    over.push(head);
    expect(() => over.next()).toThrow(expect.objectContaining({ code: 'SEEDWIRE_PATH_ESCAPE' }) as Error);
  });

  it.each([
    ['past the file size', range({ offset: 90, length: 20 })],
    ['of no bytes', range({ length: 0 })],
    ['onto the marker', range({ path: '.seedwire-incomplete' })],
    ['out of the root', range({ path: '../x' })],
  ])('are refused %s', (_why, header) => {
    const decoder = new SeedStreamDecoder();
    decoder.push(encodeRecordHeader(header));
    expect(() => decoder.next()).toThrow(SeedwireError);
  });

  it('a byte flipped in flight inside a range fails that lane with SEEDWIRE_VERIFY_FAILED naming the range', async () => {
    const base = join(work, 'flip');
    const root = join(base, 'source');
    const target = join(base, 'target');
    await mkdir(target, { recursive: true });
    await makeTree(root, [{ dir: '', name: 'big', size: 30_000, seed: 9 }]);
    const lane: Lane = { index: 1, count: 2 };
    const ports = createStreamPair({ tamper: (frame, index) => (index === 2 ? corruptFrame(frame, 100) : frame) });
    const controller = new AbortController();
    const checkpoint = await openCheckpoint({ stateDir: join(base, 'state'), seedId: 'seed-flip', resume: false, lane });
    const receive = receiveTree({ root: target, port: ports.receive, checkpoint, signal: controller.signal, onStart: () => undefined });
    const send = sendTree({ root, port: ports.send, offset: 0, compression: 'none', signal: controller.signal, chunkBytes: 1024, rangeBytes: 4096, lane });
    receive.catch(() => ports.cut('receiver failed'));
    send.then(
      () => ports.send.close(),
      () => ports.cut('sender failed'),
    );
    const error = await rejectionOf(receive);
    await send.catch(() => undefined);
    expect(error.code).toBe('SEEDWIRE_VERIFY_FAILED');
    expect(error.message).toMatch(/checksum mismatch for f_big \(bytes \d+\+4096\)/);
  });
});

describe('receive turns', () => {
  it('a lane\'s next receive waits for the previous one; other lanes do not wait; a cancel while waiting takes no turn', async () => {
    const turns = new ReceiveTurns();
    const order: string[] = [];
    const endFirst = await turns.take('seed/0', new AbortController().signal);
    const second = turns.take('seed/0', new AbortController().signal).then((end) => {
      order.push('second');
      return end;
    });
    const otherLane = await turns.take('seed/1', new AbortController().signal);
    order.push('other lane');
    const canceled = new AbortController();
    const third = turns.take('seed/0', canceled.signal);
    canceled.abort(new Error('canceled'));
    await expect(third).rejects.toThrow('canceled');
    order.push('first ends');
    endFirst();
    const endSecond = await second;
    endSecond();
    otherLane();
    expect(order).toEqual(['other lane', 'first ends', 'second']);
    // All turns ended: a new one starts at once.
    (await turns.take('seed/0', new AbortController().signal))();
  });
});
