/**
 * fast-check generators for protocol frames: valid frames of every type (built to the zod schemas
 * in shared/frames.ts), data frames, and mutations of valid frames (text edits, wrong-typed fields,
 * swapped types). Shared by the property tests and the live fuzz runs.
 */
import fc from 'fast-check';
import { ERROR_CODES } from '../../shared/errors.js';
import type { Facts, Frame } from '../../shared/frames.js';
import { encodeDataFrame, type DataFrame } from '../../shared/codec.js';

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-';

/** A valid id (IdSchema). `avoid` keeps generated ids away from ones the test relies on. */
export function idArb(avoid: readonly string[] = []): fc.Arbitrary<string> {
  return fc
    .string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 40 })
    .filter((id) => !avoid.includes(id));
}

/** JSON numbers (no NaN, no infinities, no -0, which JSON cannot carry). */
const jsonNumber = fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => (n === 0 ? 0 : n));
const safeInt = fc.maxSafeInteger();
const nonNegInt = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const text = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', maxLength });
const jsonRecord = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });

const factsArb: fc.Arbitrary<Facts> = fc.record({
  hostname: text(40),
  datacenter: fc.option(text(20), { nil: null }),
  mysqlConfigured: fc.boolean(),
  mysqlRunning: fc.option(fc.boolean(), { nil: null }),
  mysqlPort: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: null }),
  datadir: fc.option(text(40), { nil: null }),
  datadirBytes: fc.option(nonNegInt, { nil: null }),
  datadirFreeBytes: fc.option(nonNegInt, { nil: null }),
  incompleteSeed: fc.option(text(20), { nil: null }),
  snapshotBackend: fc.constantFrom('lvm' as const, 'btrfs' as const, 'none' as const),
  snapshots: fc.array(
    fc.record({ name: text(20), path: text(40), createdAt: fc.option(text(30), { nil: null }), sizeBytes: fc.option(nonNegInt, { nil: null }), mounted: fc.boolean() }),
    { maxLength: 3 },
  ),
  mounted: fc.option(fc.record({ name: text(20), mountPoint: text(40), dataPath: text(40) }), { nil: null }),
  backupTool: fc.constantFrom('mariabackup' as const, 'xtrabackup' as const, null),
  customCommands: fc.array(text(20), { maxLength: 4 }),
  collectedAt: text(30),
});

/** Every valid frame type; `avoidIds` keeps agent and call ids away from ids the test relies on. */
export function frameArb(avoidIds: readonly string[] = []): fc.Arbitrary<Frame> {
  const id = idArb(avoidIds);
  const code = fc.constantFrom(...(Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>));
  const frames: Array<fc.Arbitrary<Frame>> = [
    fc.record({
      t: fc.constant('hello' as const),
      v: safeInt,
      agentId: id,
      hostname: text(60),
      version: text(20),
      capabilities: fc.array(text(20), { maxLength: 8 }),
      datacenter: fc.option(text(30), { nil: null }),
      bootId: text(40),
      clock: jsonNumber,
      pending: fc.array(id, { maxLength: 5 }),
      running: fc.array(id, { maxLength: 5 }),
    }),
    fc.record(
      { t: fc.constant('welcome' as const), v: safeInt, sessionId: id, clock: jsonNumber, heartbeatMs: fc.integer({ min: 1 }), deadAfterMs: fc.integer({ min: 1 }), acksOutput: fc.boolean() },
      { requiredKeys: ['t', 'v', 'sessionId', 'clock', 'heartbeatMs', 'deadAfterMs'] },
    ),
    fc.record(
      { t: fc.constant('call' as const), id, op: fc.string({ minLength: 1, maxLength: 64 }), params: jsonRecord, timeoutMs: fc.integer({ min: 1 }) },
      { requiredKeys: ['t', 'id', 'op', 'params'] },
    ),
    fc.record(
      { t: fc.constant('result' as const), id, result: fc.jsonValue({ maxDepth: 3 }), exitCode: fc.option(safeInt, { nil: null }), durationMs: fc.double({ min: 0, noNaN: true, noDefaultInfinity: true }).map((n) => (n === 0 ? 0 : n)) },
      { requiredKeys: ['t', 'id', 'result', 'durationMs'] },
    ),
    fc.record(
      { t: fc.constant('error' as const), id: fc.option(id, { nil: null }), code, message: text(200), exitCode: fc.option(safeInt, { nil: null }), details: fc.jsonValue({ maxDepth: 2 }) },
      { requiredKeys: ['t', 'id', 'code', 'message'] },
    ),
    fc.record({ t: fc.constant('cancel' as const), id, reason: text(100) }),
    fc.record({ t: fc.constant('ack' as const), ids: fc.array(id, { maxLength: 8 }), output: fc.array(fc.record({ id, seq: nonNegInt }), { maxLength: 8 }) }, { requiredKeys: ['t', 'ids'] }),
    fc.record(
      { t: fc.constant('output' as const), id, seq: nonNegInt, stream: fc.constantFrom('stdout' as const, 'stderr' as const), data: text(200), gap: nonNegInt },
      { requiredKeys: ['t', 'id', 'seq', 'stream', 'data'] },
    ),
    fc.record({ t: fc.constant('progress' as const), id, data: jsonRecord }),
    fc.record({ t: fc.constant('facts' as const), facts: factsArb }),
    fc.record({ t: fc.constant('ping' as const), ts: jsonNumber }),
    fc.record({ t: fc.constant('pong' as const), ts: jsonNumber }),
    fc.record({ t: fc.constant('credit' as const), stream: fc.nat({ max: 0xffffffff }), limit: nonNegInt }),
    fc.record({ t: fc.constant('move' as const), url: fc.webUrl(), reason: text(200) }),
  ];
  return fc.oneof(...frames);
}

export const FRAME_TYPES = ['hello', 'welcome', 'call', 'result', 'error', 'cancel', 'ack', 'output', 'progress', 'facts', 'ping', 'pong', 'credit', 'move'] as const;

/** A JSON-ish value of any shape, including the awkward ones (huge numbers, deep arrays, __proto__ keys). */
export const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, -1, 0.5, '', 'x'.repeat(5_000), '\u0000\u202e', [], {}, null, true),
  fc.constant(JSON.parse('{"__proto__":{"polluted":true}}') as unknown),
  fc.integer({ min: 1, max: 2_000 }).map((depth) => JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown),
);

/** A mutated valid frame, as the text sent on the wire. */
export function mutatedFrameTextArb(avoidIds: readonly string[] = []): fc.Arbitrary<string> {
  const structural = fc
    .tuple(frameArb(avoidIds), fc.nat(), hostileValueArb, fc.constantFrom(...FRAME_TYPES), fc.nat({ max: 3 }))
    .map(([frame, pick, value, otherType, kind]) => {
      const obj = { ...(frame as Record<string, unknown>) };
      const keys = Object.keys(obj);
      const key = keys[pick % keys.length]!;
      if (kind === 0) obj[key] = value;
      else if (kind === 1) delete obj[key];
      else if (kind === 2) obj['t'] = otherType;
      else obj[`x${pick % 5}`] = value;
      return JSON.stringify(obj);
    });
  const textual = fc
    .tuple(frameArb(avoidIds), fc.nat(), fc.nat({ max: 16 }), fc.string({ maxLength: 8, unit: 'binary' }))
    .map(([frame, at, len, insert]) => {
      const raw = JSON.stringify(frame);
      const i = at % (raw.length + 1);
      return raw.slice(0, i) + insert + raw.slice(Math.min(raw.length, i + len));
    });
  return fc.oneof(structural, textual);
}

/** Arbitrary text frames: random strings, random JSON, mutated valid frames. */
export function hostileTextArb(avoidIds: readonly string[] = []): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.json({ maxDepth: 4 }),
    mutatedFrameTextArb(avoidIds),
    mutatedFrameTextArb(avoidIds),
  );
}

export const dataFrameArb: fc.Arbitrary<DataFrame> = fc
  .record({
    stream: fc.nat({ max: 0xffffffff }),
    offset: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    codec: fc.constantFrom('none' as const, 'gzip' as const, 'zstd' as const),
    payload: fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)),
    rawLength: fc.nat({ max: 0xffffffff }),
    crc: fc.boolean(),
  })
  .map((frame) => (frame.codec === 'none' ? { ...frame, rawLength: frame.payload.length } : frame));

/** Binary frames: random bytes, and valid data frames with some bytes overwritten. */
export const hostileBinaryArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  fc
    .tuple(dataFrameArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
    .map(([frame, edits]) => {
      const buf = Buffer.from(encodeDataFrame(frame));
      for (const [at, byte] of edits) buf[at % buf.length] = byte;
      return buf;
    }),
);
