import { describe, expect, it } from 'vitest';
import {
  DATA_HEADER_BYTES,
  decodeDataFrame,
  decodeDataHeader,
  decodeFrame,
  encodeDataFrame,
  encodeFrame,
} from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { Frame } from '../../shared/frames.js';
import { errorCodeOf } from '../helpers/checks.js';


describe('text frames', () => {
  it('round-trips every frame type', () => {
    const frames: Frame[] = [
      { t: 'hello', v: 1, agentId: 'db-7', hostname: 'db-7.dc1', version: '0.1.0', capabilities: ['hostname'], datacenter: 'dc1', bootId: 'b1', clock: 1, pending: [], running: ['c1'] },
      { t: 'welcome', v: 1, sessionId: 's1', clock: 2, heartbeatMs: 20000, deadAfterMs: 45000 },
      { t: 'call', id: 'c1', op: 'hostname', params: {} },
      { t: 'result', id: 'c1', result: { hostname: 'x' }, exitCode: null, durationMs: 3 },
      { t: 'error', id: null, code: 'SEEDWIRE_BAD_FRAME', message: 'bad' },
      { t: 'cancel', id: 'c1', reason: 'user' },
      { t: 'ack', ids: ['c1'] },
      { t: 'output', id: 'c1', seq: 0, stream: 'stdout', data: 'hi\n' },
      { t: 'progress', id: 'c1', data: { committed: 10 } },
      { t: 'ping', ts: 5 },
      { t: 'pong', ts: 5 },
      { t: 'credit', stream: 3, limit: 4194304 },
    ];
    for (const frame of frames) expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
  });

  it('parses the literal bytes of a call', () => {
    expect(decodeFrame('{"t":"call","id":"abc-1","op":"hostname","params":{}}')).toEqual({ t: 'call', id: 'abc-1', op: 'hostname', params: {} });
  });

  it('refuses non-JSON, unknown types and bad fields with SEEDWIRE_BAD_FRAME naming the field', () => {
    expect(errorCodeOf(() => decodeFrame('{nope'))).toBe('SEEDWIRE_BAD_FRAME');
    expect(errorCodeOf(() => decodeFrame('{"t":"launch"}'))).toBe('SEEDWIRE_BAD_FRAME');
    try {
      decodeFrame('{"t":"call","id":"c9","op":"hostname","params":[]}');
      expect.unreachable();
    } catch (error) {
      const e = error as SeedwireError;
      expect(e.code).toBe('SEEDWIRE_BAD_FRAME');
      expect(e.message).toContain("'call'");
      expect(e.message).toContain('params');
      expect(e.details).toEqual({ id: 'c9', type: 'call' });
    }
  });

  it('refuses an error frame with a code outside the registry', () => {
    expect(errorCodeOf(() => decodeFrame('{"t":"error","id":null,"code":"EVIL","message":"x"}'))).toBe('SEEDWIRE_BAD_FRAME');
  });

  it('refuses oversized frames before parsing them', () => {
    const big = JSON.stringify({ t: 'ping', ts: 1, pad: 'x'.repeat(100) });
    expect(errorCodeOf(() => decodeFrame(big, 64))).toBe('SEEDWIRE_FRAME_TOO_LARGE');
  });
});

describe('binary data frames', () => {
  it('writes the documented 24-byte header', () => {
    const buf = encodeDataFrame({ stream: 7, offset: 0x1_0000_0001, rawLength: 3, codec: 'none', payload: Buffer.from('abc'), crc: true });
    expect(buf.length).toBe(DATA_HEADER_BYTES + 3);
    expect([...buf.subarray(0, 20)]).toEqual([
      0x53, 0x57, 1, 0x04, // magic 'SW', version 1, codec none, CRC present
      0, 0, 0, 7, // stream 7
      0, 0, 0, 1, 0, 0, 0, 1, // offset 2^32 + 1
      0, 0, 0, 3, // raw length 3
    ]);
    expect(buf.readUInt32BE(20)).toBe(0x352441c2); // CRC-32 of 'abc'
    expect(buf.subarray(24).toString()).toBe('abc');
  });

  it('round-trips and keeps the payload a view, not a copy', () => {
    const payload = Buffer.from('compressed bytes');
    const buf = encodeDataFrame({ stream: 1, offset: 42, rawLength: 1000, codec: 'zstd', payload });
    const frame = decodeDataFrame(buf);
    expect(frame).toMatchObject({ stream: 1, offset: 42, rawLength: 1000, codec: 'zstd' });
    expect(frame.payload.equals(payload)).toBe(true);
    expect(frame.payload.buffer).toBe(buf.buffer);
    expect(decodeDataHeader(buf)).toMatchObject({ stream: 1, offset: 42, codec: 'zstd' });
  });

  it('leaves the CRC out by default (flag clear, field zero)', () => {
    const buf = encodeDataFrame({ stream: 1, offset: 0, rawLength: 4, codec: 'gzip', payload: Buffer.from('data') });
    expect(buf[3]).toBe(1);
    expect(buf.readUInt32BE(20)).toBe(0);
    expect(decodeDataHeader(buf).crc).toBeNull();
    buf[DATA_HEADER_BYTES] = 0;
    expect(decodeDataFrame(buf).payload[0]).toBe(0); // nothing to check here: the file's SHA-256 will
  });

  it('catches a flipped payload byte by CRC when the frame carries one', () => {
    const buf = encodeDataFrame({ stream: 1, offset: 0, rawLength: 4, codec: 'none', payload: Buffer.from('data'), crc: true });
    buf[DATA_HEADER_BYTES + 1] = buf[DATA_HEADER_BYTES + 1]! ^ 0xff;
    expect(errorCodeOf(() => decodeDataFrame(buf))).toBe('SEEDWIRE_VERIFY_FAILED');
  });

  it('refuses short frames, a bad magic, another version and a length that lies', () => {
    expect(errorCodeOf(() => decodeDataHeader(Buffer.alloc(10)))).toBe('SEEDWIRE_BAD_FRAME');
    const ok = encodeDataFrame({ stream: 1, offset: 0, rawLength: 4, codec: 'none', payload: Buffer.from('data') });
    const badMagic = Buffer.from(ok);
    badMagic[0] = 0;
    expect(errorCodeOf(() => decodeDataHeader(badMagic))).toBe('SEEDWIRE_BAD_FRAME');
    const v2 = Buffer.from(ok);
    v2[2] = 2;
    expect(errorCodeOf(() => decodeDataHeader(v2))).toBe('SEEDWIRE_PROTOCOL_VERSION');
    const lies = encodeDataFrame({ stream: 1, offset: 0, rawLength: 9, codec: 'none', payload: Buffer.from('data') });
    expect(errorCodeOf(() => decodeDataFrame(lies))).toBe('SEEDWIRE_BAD_FRAME');
  });
});
