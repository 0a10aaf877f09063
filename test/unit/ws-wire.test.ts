/**
 * The data connections' WebSocket framing, on literal bytes: client frames parsed into payload
 * slices (zero and real masks, every length form, split anywhere), the fragmentation and control
 * frame rules, and the server frames the relay writes; server frames as the agents' data reader
 * parses them, payload read straight into place included. Also the opening handshake's checks.
 */
import { describe, expect, it } from 'vitest';
import { acceptValueOf, readWebSocketHandshake } from '../../server-stub/hub/data-upgrade.js';
import {
  FrameParser,
  decodeClosePayload,
  encodeClosePayload,
  encodeFrame,
  encodeFrameHeader,
  OPCODES,
  type FrameSink,
  type ControlOpcode,
  type FrameStart,
} from '../../shared/ws-wire.js';

type Event = { start: FrameStart } | { payload: string } | { end: FrameStart } | { control: ControlOpcode; payload: string };

function collect(maxMessageBytes = 1 << 20, from: 'client' | 'server' = 'client'): { parser: FrameParser; events: Event[]; payloads: Buffer[] } {
  const events: Event[] = [];
  const payloads: Buffer[] = [];
  const sink: FrameSink = {
    dataFrameStart: (frame) => events.push({ start: { ...frame } }),
    dataPayload: (slice) => {
      payloads.push(slice);
      events.push({ payload: slice.toString('hex') });
    },
    dataFrameEnd: (frame) => events.push({ end: { ...frame } }),
    control: (opcode, payload) => events.push({ control: opcode, payload: payload.toString('hex') }),
  };
  return { parser: new FrameParser(sink, { maxMessageBytes, from }), events, payloads };
}

/** A client frame as a client writes it: masked with `mask`. */
function clientFrame(opcode: number, payload: Buffer, options: { fin?: boolean; mask?: number[]; rsv?: number } = {}): Buffer {
  const mask = Buffer.from(options.mask ?? [0, 0, 0, 0]);
  const server = encodeFrameHeader(opcode, options.fin ?? true, payload.length);
  server[0] = (server[0] ?? 0) | (options.rsv ?? 0);
  server[1] = (server[1] ?? 0) | 0x80;
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i += 1) body[i] = (body[i] ?? 0) ^ (mask[i & 3] ?? 0);
  return Buffer.concat([server, mask, body]);
}

function joined(payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads);
}

describe('FrameParser', () => {
  it('reads a zero-masked binary frame as a view of the pushed chunk (no copy)', () => {
    const { parser, events, payloads } = collect();
    const wire = Buffer.from('8285000000000102030405', 'hex');
    parser.push(wire);
    expect(events).toEqual([{ start: { opcode: 2, fin: true, length: 5 } }, { payload: '0102030405' }, { end: { opcode: 2, fin: true, length: 5 } }]);
    expect(payloads[0]?.buffer).toBe(wire.buffer);
  });

  it('unmasks a real mask in place, whatever the chunk boundaries', () => {
    const payload = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const wire = clientFrame(OPCODES.binary, payload, { mask: [0x12, 0x34, 0x56, 0x78] });
    for (const step of [1, 3, 7, 64, wire.length]) {
      const { parser, payloads } = collect();
      for (let at = 0; at < wire.length; at += step) parser.push(Buffer.from(wire.subarray(at, at + step)));
      expect(joined(payloads).equals(payload)).toBe(true);
    }
  });

  it('reads 7-bit, 16-bit and 64-bit lengths', () => {
    for (const length of [0, 125, 126, 65535, 65536, 1024 * 1024 + 24]) {
      const { parser, events, payloads } = collect(2 << 20);
      parser.push(clientFrame(OPCODES.binary, Buffer.alloc(length, 9)));
      expect(events[0]).toEqual({ start: { opcode: 2, fin: true, length } });
      expect(events.at(-1)).toEqual({ end: { opcode: 2, fin: true, length } });
      expect(joined(payloads).length).toBe(length);
    }
  });

  it('passes fragments through as frames and control frames between them', () => {
    const { parser, events } = collect();
    parser.push(
      Buffer.concat([
        clientFrame(OPCODES.binary, Buffer.from('aa', 'hex'), { fin: false }),
        clientFrame(OPCODES.ping, Buffer.from('01', 'hex'), { mask: [1, 2, 3, 4] }),
        clientFrame(OPCODES.continuation, Buffer.alloc(0), { fin: false }),
        clientFrame(OPCODES.continuation, Buffer.from('bb', 'hex')),
      ]),
    );
    expect(events).toEqual([
      { start: { opcode: 2, fin: false, length: 1 } },
      { payload: 'aa' },
      { end: { opcode: 2, fin: false, length: 1 } },
      { control: OPCODES.ping, payload: '01' },
      { start: { opcode: 0, fin: false, length: 0 } },
      { end: { opcode: 0, fin: false, length: 0 } },
      { start: { opcode: 0, fin: true, length: 1 } },
      { payload: 'bb' },
      { end: { opcode: 0, fin: true, length: 1 } },
    ]);
  });

  it.each([
    ['an unmasked frame', Buffer.from('820101', 'hex'), 'unmasked'],
    ['RSV bits', clientFrame(OPCODES.binary, Buffer.from('01', 'hex'), { rsv: 0x40 }), 'RSV'],
    ['an unknown opcode', clientFrame(0x3, Buffer.alloc(1)), 'unknown opcode 3'],
    ['a continuation with no message', clientFrame(OPCODES.continuation, Buffer.alloc(1)), 'no fragmented message'],
    ['a new message inside a fragmented one', Buffer.concat([clientFrame(OPCODES.binary, Buffer.alloc(1), { fin: false }), clientFrame(OPCODES.text, Buffer.alloc(1))]), 'new message began'],
    ['a fragmented ping', clientFrame(OPCODES.ping, Buffer.alloc(1), { fin: false }), 'fragmented control frame'],
    ['a long ping', clientFrame(OPCODES.ping, Buffer.alloc(126)), 'control frame of 126 bytes'],
    ['a message over the limit', Buffer.concat([clientFrame(OPCODES.binary, Buffer.alloc(60), { fin: false }), clientFrame(OPCODES.continuation, Buffer.alloc(60))]), 'more than 100 bytes'],
    ['a 64-bit length past 2^53', Buffer.from('82ffffffffffffffffff00000000', 'hex'), 'beyond 2^53'],
  ])('refuses %s, naming it, and then reads nothing more', (_what, wire, message) => {
    const { parser, events } = collect(100);
    expect(() => parser.push(wire)).toThrow(expect.objectContaining({ code: 'SEEDWIRE_BAD_FRAME', message: expect.stringContaining(message) }));
    const seen = events.length;
    parser.push(clientFrame(OPCODES.binary, Buffer.alloc(1)));
    expect(events.length).toBe(seen);
  });

  it('stops at once when halted from inside a callback', () => {
    const events: string[] = [];
    const parser: FrameParser = new FrameParser(
      {
        dataFrameStart: () => {
          events.push('start');
          parser.halt();
        },
        dataPayload: () => events.push('payload'),
        dataFrameEnd: () => events.push('end'),
        control: () => events.push('control'),
      },
      { maxMessageBytes: 100 },
    );
    parser.push(Buffer.concat([clientFrame(OPCODES.binary, Buffer.alloc(4)), clientFrame(OPCODES.ping, Buffer.alloc(0))]));
    expect(events).toEqual(['start']);
  });
});

describe('server frames', () => {
  it('encodes headers in the shortest form, unmasked', () => {
    expect(encodeFrameHeader(OPCODES.binary, true, 5).toString('hex')).toBe('8205');
    expect(encodeFrameHeader(OPCODES.continuation, false, 126).toString('hex')).toBe('007e007e');
    expect(encodeFrameHeader(OPCODES.binary, false, 65536).toString('hex')).toBe('027f0000000000010000');
    expect(encodeFrame(OPCODES.text, Buffer.from('hi')).toString('hex')).toBe('81026869');
  });

  it('close payloads: code and reason, cut to 125 bytes on a character boundary', () => {
    expect(encodeClosePayload(4000, 'bad').toString('hex')).toBe('0fa0626164');
    const long = encodeClosePayload(1000, 'é'.repeat(100));
    expect(long.length).toBeLessThanOrEqual(125);
    expect(decodeClosePayload(long)).toEqual({ code: 1000, reason: 'é'.repeat(61) });
    expect(decodeClosePayload(Buffer.alloc(0))).toEqual({ code: 1005, reason: '' });
    expect(() => decodeClosePayload(Buffer.alloc(1))).toThrow(/one-byte/);
  });
});

describe('FrameParser reading a server', () => {
  it('reads unmasked frames and refuses a masked one, naming it', () => {
    const { parser, events } = collect(1 << 20, 'server');
    parser.push(encodeFrame(OPCODES.binary, Buffer.from('abc')));
    expect(events).toEqual([{ start: { opcode: 2, fin: true, length: 3 } }, { payload: '616263' }, { end: { opcode: 2, fin: true, length: 3 } }]);
    const masked = collect(1 << 20, 'server');
    expect(() => masked.parser.push(clientFrame(OPCODES.binary, Buffer.from('abc')))).toThrow(/a masked frame \(a server must not mask its frames\)/);
    // After the violation the parser ignores everything.
    masked.parser.push(encodeFrame(OPCODES.binary, Buffer.from('x')));
    expect(masked.events).toEqual([]);
  });

  it('takes payload bytes the caller read into place: payloadLeft counts down, the frame ends exactly at its length', () => {
    const payload = Buffer.alloc(100_000, 7);
    const wire = encodeFrame(OPCODES.binary, payload);
    const headerBytes = wire.length - payload.length;
    const { parser, events, payloads } = collect(1 << 20, 'server');
    // The header and the first 10 bytes through push, as a scratch read would deliver them.
    parser.push(wire.subarray(0, headerBytes + 10));
    expect(parser.midFrame).toBe(true);
    expect(parser.payloadLeft).toBe(payload.length - 10);
    parser.payloadDelivered(60_000);
    expect(parser.payloadLeft).toBe(payload.length - 60_010);
    parser.payloadDelivered(payload.length - 60_010);
    expect(parser.midFrame).toBe(false);
    expect(parser.payloadLeft).toBe(0);
    expect(joined(payloads).length).toBe(10); // only what came through push was handed over as slices
    expect(events.at(-1)).toEqual({ end: { opcode: 2, fin: true, length: payload.length } });
    // The next frame parses as usual.
    parser.push(encodeFrame(OPCODES.ping, Buffer.from('p')));
    expect(events.at(-1)).toEqual({ control: OPCODES.ping, payload: '70' });
  });

  it('refuses more delivered bytes than the frame has left, or any outside a payload', () => {
    const { parser } = collect(1 << 20, 'server');
    expect(() => parser.payloadDelivered(1)).toThrow(/outside an unmasked frame's payload/);
    const other = collect(1 << 20, 'server');
    other.parser.push(encodeFrameHeader(OPCODES.binary, true, 100));
    expect(() => other.parser.payloadDelivered(101)).toThrow(/outside an unmasked frame's payload/);
  });

  it('applies the message limit to a server message of many fragments', () => {
    const { parser } = collect(1000, 'server');
    parser.push(Buffer.concat([encodeFrameHeader(OPCODES.binary, false, 600), Buffer.alloc(600)]));
    expect(() => parser.push(Buffer.concat([encodeFrameHeader(OPCODES.continuation, true, 600), Buffer.alloc(600)]))).toThrow(/a message of more than 1000 bytes/);
  });
});

describe('readWebSocketHandshake', () => {
  const good = { method: 'GET', headers: { upgrade: 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } };

  it('accepts an RFC 6455 opening handshake and answers its key as the RFC example does', () => {
    expect(readWebSocketHandshake(good)).toEqual({ ok: true, key: 'dGhlIHNhbXBsZSBub25jZQ==' });
    expect(acceptValueOf('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('refuses what is not one, naming what was wrong', () => {
    expect(readWebSocketHandshake({ ...good, method: 'POST' })).toMatchObject({ ok: false, status: 405, message: expect.stringContaining('GET') });
    expect(readWebSocketHandshake({ ...good, headers: { ...good.headers, upgrade: 'h2c' } })).toMatchObject({ ok: false, status: 400, message: expect.stringContaining('Upgrade') });
    expect(readWebSocketHandshake({ ...good, headers: { ...good.headers, 'sec-websocket-key': 'short' } })).toMatchObject({ ok: false, status: 400, message: expect.stringContaining('Sec-WebSocket-Key') });
    expect(readWebSocketHandshake({ ...good, headers: { ...good.headers, 'sec-websocket-version': '8' } })).toMatchObject({ ok: false, status: 400, message: expect.stringContaining('Version') });
  });
});
