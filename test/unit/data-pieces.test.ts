/** Data frames out of message pieces (agent/streams/data-pieces.ts), on literal frames cut at every place. */
import { describe, expect, it } from 'vitest';
import { DataFrameAssembler } from '../../agent/streams/data-pieces.js';
import type { ReceivedChunk } from '../../agent/streams/types.js';
import { encodeDataFrame } from '../../shared/codec.js';

function collect(stream = 5): { assembler: DataFrameAssembler; chunks: ReceivedChunk[] } {
  const chunks: ReceivedChunk[] = [];
  return { assembler: new DataFrameAssembler(stream, (chunk) => chunks.push(chunk)), chunks };
}

function feed(assembler: DataFrameAssembler, message: Buffer, cuts: number[]): void {
  assembler.start();
  let at = 0;
  for (const cut of [...cuts, message.length]) {
    if (cut > at) assembler.piece(message.subarray(at, cut));
    at = Math.max(at, cut);
  }
  assembler.end();
}

describe('data frames from message pieces', () => {
  const payload = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
  const frame = encodeDataFrame({ stream: 5, offset: 1000, rawLength: 100, codec: 'none', payload });

  it('hands an uncompressed frame on piece by piece, at its offsets, as views; only the last piece has no `more`', () => {
    for (const cuts of [[], [10], [24], [30], [5, 30, 60, 99], [24, 25, 123]]) {
      const { assembler, chunks } = collect();
      feed(assembler, frame, cuts);
      expect(Buffer.concat(chunks.map((c) => c.payload))).toEqual(payload);
      let offset = 1000;
      for (const [i, chunk] of chunks.entries()) {
        expect(chunk.offset).toBe(offset);
        expect(chunk.rawLength).toBe(chunk.payload.length);
        expect(chunk.payload.buffer).toBe(frame.buffer);
        expect(chunk.more === true).toBe(i < chunks.length - 1);
        offset += chunk.rawLength;
      }
      expect(offset).toBe(1100);
    }
  });

  it('hands an empty frame (a streamed seed\'s end) on as one empty chunk', () => {
    const { assembler, chunks } = collect();
    feed(assembler, encodeDataFrame({ stream: 5, offset: 77, rawLength: 0, codec: 'none', payload: Buffer.alloc(0) }), [3]);
    expect(chunks).toEqual([{ offset: 77, rawLength: 0, codec: 'none', payload: Buffer.alloc(0) }]);
  });

  it('gathers a compressed frame or one with a CRC and decodes it whole', () => {
    const zipped = encodeDataFrame({ stream: 5, offset: 0, rawLength: 4096, codec: 'gzip', payload: Buffer.from('compressed bytes') });
    const { assembler, chunks } = collect();
    feed(assembler, zipped, [1, 30]);
    expect(chunks).toEqual([{ offset: 0, rawLength: 4096, codec: 'gzip', payload: Buffer.from('compressed bytes') }]);
    const withCrc = encodeDataFrame({ stream: 5, offset: 8, rawLength: 100, codec: 'none', payload, crc: true });
    const crc = collect();
    feed(crc.assembler, withCrc, [50]);
    expect(crc.chunks).toHaveLength(1);
    const bad = Buffer.from(withCrc);
    bad[60] = (bad[60] as number) ^ 1;
    const flipped = collect();
    expect(() => feed(flipped.assembler, bad, [50])).toThrow(expect.objectContaining({ code: 'SEEDWIRE_VERIFY_FAILED' }) as Error);
  });

  it('refuses another stream, a short header, and a payload longer or shorter than it says', () => {
    expect(() => feed(collect(6).assembler, frame, [])).toThrow(/a frame of stream 5 on its data connection/);
    expect(() => feed(collect().assembler, frame.subarray(0, 20), [])).toThrow(/shorter than its 24-byte header/);
    const long = collect();
    expect(() => feed(long.assembler, Buffer.concat([frame, Buffer.from([1])]), [124])).toThrow(/carries more than the 100 bytes/);
    expect(long.chunks.reduce((n, c) => n + c.rawLength, 0)).toBe(100);
    expect(() => feed(collect().assembler, frame.subarray(0, 90), [])).toThrow(/carries 66 bytes but says 100/);
  });

  it('frames follow each other on one connection', () => {
    const { assembler, chunks } = collect();
    const second = encodeDataFrame({ stream: 5, offset: 1100, rawLength: 3, codec: 'none', payload: Buffer.from('xyz') });
    feed(assembler, frame, [40]);
    feed(assembler, second, [2]);
    expect(chunks.map((c) => [c.offset, c.rawLength])).toEqual([
      [1000, 16],
      [1016, 84],
      [1100, 3],
    ]);
  });
});
