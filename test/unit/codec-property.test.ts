/**
 * Property tests (fast-check, fixed seed) on the frame codec and the frame schemas: round trips,
 * and that nothing a peer can send makes the decoder throw anything but a typed SeedwireError.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DATA_HEADER_BYTES, decodeDataFrame, decodeDataHeader, decodeFrame, encodeDataFrame, encodeFrame } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import { FrameSchema, IdSchema } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { dataFrameArb, frameArb, FRAME_TYPES, hostileBinaryArb, hostileTextArb, hostileValueArb, mutatedFrameTextArb } from '../helpers/frame-arbitraries.js';

const RUNS = { seed: 0x5eed, numRuns: 500 };
/** What a refusal may echo back of the frame it refuses. */
const MAX_REFUSAL_MESSAGE = 512;

/** Decodes; the only acceptable failures are typed, bounded refusals. */
function decodeOrRefuse(text: string, maxBytes?: number): { frame: unknown } | { error: SeedwireError } {
  try {
    return { frame: decodeFrame(text, maxBytes) };
  } catch (error) {
    expect(error).toBeInstanceOf(SeedwireError);
    const e = error as SeedwireError;
    expect(['SEEDWIRE_BAD_FRAME', 'SEEDWIRE_FRAME_TOO_LARGE']).toContain(e.code);
    expect(e.message.length).toBeLessThanOrEqual(MAX_REFUSAL_MESSAGE);
    const id = (e.details as { id?: unknown } | undefined)?.id;
    // The id echoed for the peer must itself be a valid id (it goes into an error frame).
    if (id !== undefined && id !== null) expect(IdSchema.safeParse(id).success).toBe(true);
    return { error: e };
  }
}

describe('text frame codec (properties)', () => {
  it('decode(encode(frame)) is the frame, for every frame type', () => {
    fc.assert(
      fc.property(frameArb(), (frame) => {
        expect(decodeFrame(encodeFrame(frame))).toEqual(JSON.parse(JSON.stringify(frame)));
      }),
      RUNS,
    );
  });

  it('arbitrary text and mutated valid frames either decode to a valid frame or are refused with a typed error', () => {
    fc.assert(
      fc.property(hostileTextArb(), (text) => {
        const outcome = decodeOrRefuse(text);
        if ('frame' in outcome) expect(FrameSchema.safeParse(outcome.frame).success).toBe(true);
      }),
      { ...RUNS, numRuns: 2_000 },
    );
  });

  it('a refusal keeps the call id when the frame had a valid one, so the peer can fail just that call', () => {
    fc.assert(
      fc.property(frameArb(), (frame) => {
        if (!('id' in frame) || typeof frame.id !== 'string' || frame.t === 'error') return;
        // One wrong field for every type that carries a call id (zod ignores the extra keys).
        const broken = { ...frame, params: [], op: '', durationMs: -1, reason: 7, seq: -1, data: 7 };
        const outcome = decodeOrRefuse(JSON.stringify(broken));
        expect('error' in outcome && outcome.error.details).toMatchObject({ id: frame.id });
      }),
      RUNS,
    );
  });

  it('refuses a frame one byte over the limit and accepts one exactly at it', () => {
    fc.assert(
      fc.property(frameArb(), fc.nat({ max: 64 }), (frame, slack) => {
        const text = encodeFrame(frame);
        const size = Buffer.byteLength(text);
        expect('frame' in decodeOrRefuse(text, size)).toBe(true);
        expect('frame' in decodeOrRefuse(text + ' '.repeat(slack), size + slack)).toBe(true);
        const over = decodeOrRefuse(text + ' '.repeat(slack + 1), size + slack);
        expect('error' in over && over.error.code).toBe('SEEDWIRE_FRAME_TOO_LARGE');
      }),
      RUNS,
    );
  });

  it('enforces the schemas’ own bounds (ids, list lengths, message size)', () => {
    const hello = { t: 'hello', v: 1, agentId: 'a', hostname: 'h', version: '1', capabilities: [], datacenter: null, bootId: 'b', clock: 0, pending: [], running: [] };
    expect('error' in decodeOrRefuse(JSON.stringify({ ...hello, pending: Array.from({ length: 10_001 }, (_, i) => `c${i}`) }))).toBe(true);
    expect('error' in decodeOrRefuse(JSON.stringify({ ...hello, agentId: 'x'.repeat(129) }))).toBe(true);
    expect('error' in decodeOrRefuse(JSON.stringify({ ...hello, agentId: 'a b' }))).toBe(true);
    expect('error' in decodeOrRefuse(JSON.stringify({ t: 'error', id: null, code: 'SEEDWIRE_INTERNAL', message: 'm'.repeat(64 * 1024 + 1) }))).toBe(true);
    expect('error' in decodeOrRefuse(JSON.stringify({ t: 'credit', stream: 2 ** 32, limit: 0 }))).toBe(true);
    expect('error' in decodeOrRefuse(JSON.stringify({ t: 'x'.repeat(LIMITS.maxMessageBytes - 20) }))).toBe(true);
    expect('error' in decodeOrRefuse(JSON.stringify({ t: 'call', id: 'i'.repeat(100_000), op: 'hostname', params: [] }))).toBe(true);
  });

  it('found by these properties: a refusal neither echoes a huge type nor an invalid id', () => {
    const huge = decodeOrRefuse(JSON.stringify({ t: 'x'.repeat(5_000) }));
    expect('error' in huge && huge.error.message).toMatch(/^bad 'x{32}\.\.\.' frame at t: /);
    const badId = decodeOrRefuse('{"t":"error","id":"{a","code":"SEEDWIRE_AUTH","message":""}');
    expect('error' in badId && badId.error.details).toEqual({ id: null, type: 'error' });
  });
});

describe('frame schemas (properties)', () => {
  it('safeParse never throws, whatever the value (it reports through its result)', () => {
    const shaped = fc.tuple(fc.constantFrom(...FRAME_TYPES), fc.dictionary(fc.string({ maxLength: 10 }), hostileValueArb, { maxKeys: 8 })).map(([t, rest]) => ({ ...rest, t }));
    const anything = fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withSparseArray: true, withBoxedValues: true });
    fc.assert(
      fc.property(fc.oneof(shaped, anything, hostileValueArb), (value) => {
        const result = FrameSchema.safeParse(value);
        expect(typeof result.success).toBe('boolean');
      }),
      { ...RUNS, numRuns: 2_000 },
    );
  });

  it('every frame a mutation leaves valid still satisfies its schema after a re-encode', () => {
    fc.assert(
      fc.property(mutatedFrameTextArb(), (text) => {
        const outcome = decodeOrRefuse(text);
        if ('frame' in outcome) expect(decodeFrame(JSON.stringify(outcome.frame))).toEqual(outcome.frame);
      }),
      RUNS,
    );
  });
});

describe('binary data frames (properties)', () => {
  it('decode(encode(frame)) gives back every header field and the payload', () => {
    fc.assert(
      fc.property(dataFrameArb, (frame) => {
        const decoded = decodeDataFrame(encodeDataFrame(frame));
        expect({ ...decoded, payload: [...decoded.payload] }).toEqual({ stream: frame.stream, offset: frame.offset, rawLength: frame.rawLength, codec: frame.codec, payload: [...frame.payload] });
      }),
      RUNS,
    );
  });

  it('arbitrary bytes and overwritten frames are decoded or refused with a typed error, never anything else', () => {
    fc.assert(
      fc.property(hostileBinaryArb, (buf) => {
        for (const decode of [decodeDataHeader, decodeDataFrame]) {
          try {
            decode(buf);
          } catch (error) {
            expect(error).toBeInstanceOf(SeedwireError);
            expect(['SEEDWIRE_BAD_FRAME', 'SEEDWIRE_PROTOCOL_VERSION', 'SEEDWIRE_VERIFY_FAILED']).toContain((error as SeedwireError).code);
          }
        }
      }),
      { ...RUNS, numRuns: 2_000 },
    );
  });

  it('with a CRC, any single changed payload byte is caught', () => {
    fc.assert(
      fc.property(dataFrameArb.filter((f) => f.payload.length > 0), fc.nat(), fc.integer({ min: 1, max: 255 }), (frame, at, xor) => {
        const buf = encodeDataFrame({ ...frame, crc: true });
        const i = DATA_HEADER_BYTES + (at % frame.payload.length);
        buf[i] = buf[i]! ^ xor;
        expect(() => decodeDataFrame(buf)).toThrow(expect.objectContaining({ code: 'SEEDWIRE_VERIFY_FAILED' }));
      }),
      RUNS,
    );
  });

  it('refuses to encode a header field outside its width, with a typed error', () => {
    const ok = { stream: 1, offset: 0, rawLength: 0, codec: 'none' as const, payload: Buffer.alloc(0) };
    for (const bad of [{ stream: 2 ** 32 }, { stream: -1 }, { stream: 1.5 }, { offset: Number.MAX_SAFE_INTEGER + 2 }, { offset: -1 }, { rawLength: 2 ** 32 }]) {
      expect(() => encodeDataFrame({ ...ok, ...bad })).toThrow(expect.objectContaining({ code: 'SEEDWIRE_BAD_FRAME' }));
    }
  });
});

describe('JSON nesting depth (found by the live fuzz run: a result nested 5,000 deep left its operation running forever)', () => {
  const nest = (depth: number, inner = '0'): string => '['.repeat(depth) + inner + ']'.repeat(depth);

  it('refuses a frame nested deeper than the limit, keeping the call id', () => {
    for (const depth of [LIMITS.maxJsonDepth, 5_000, 500_000]) {
      const outcome = decodeOrRefuse(`{"t":"result","id":"c-1","result":${nest(depth)},"durationMs":1}`);
      expect('error' in outcome && outcome.error.message).toMatch(/nests deeper than 64 levels/);
      expect('error' in outcome && outcome.error.details).toEqual({ id: 'c-1', type: 'result' });
    }
  });

  it('accepts nesting up to the limit, and brackets inside strings do not count', () => {
    expect('frame' in decodeOrRefuse(`{"t":"result","id":"c-1","result":${nest(LIMITS.maxJsonDepth - 1)},"durationMs":1}`)).toBe(true);
    const bracketsInText = JSON.stringify({ t: 'output', id: 'c-1', seq: 0, stream: 'stdout', data: '[{'.repeat(10_000) + '"\\' });
    expect('frame' in decodeOrRefuse(bracketsInText)).toBe(true);
  });

  it('every value a decoded frame carries can be stored again (JSON.stringify does not throw)', () => {
    fc.assert(
      fc.property(hostileTextArb(), (text) => {
        const outcome = decodeOrRefuse(text);
        if ('frame' in outcome) expect(() => JSON.stringify(outcome.frame)).not.toThrow();
      }),
      RUNS,
    );
  });
});
