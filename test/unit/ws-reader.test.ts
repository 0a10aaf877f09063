/** The receiving data connection's own WebSocket frame reader (agent/streams/ws-reader.ts), on literal bytes. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WsFrameReader, type WsReaderHandlers } from '../../agent/streams/ws-reader.js';
import { SeedwireError } from '../../shared/errors.js';

type Event = { e: 'start'; kind: string } | { e: 'piece'; bytes: string } | { e: 'end' } | { e: 'ping' | 'pong'; payload: string } | { e: 'close'; code: number | null; reason: string };

function recorder(): { handlers: WsReaderHandlers; events: Event[]; pieces: Buffer[] } {
  const events: Event[] = [];
  const pieces: Buffer[] = [];
  return {
    events,
    pieces,
    handlers: {
      messageStart: (kind) => events.push({ e: 'start', kind }),
      messagePiece: (bytes) => {
        pieces.push(bytes);
        events.push({ e: 'piece', bytes: bytes.toString('hex') });
      },
      messageEnd: () => events.push({ e: 'end' }),
      ping: (payload) => events.push({ e: 'ping', payload: payload.toString() }),
      pong: (payload) => events.push({ e: 'pong', payload: payload.toString() }),
      close: (code, reason) => events.push({ e: 'close', code, reason }),
    },
  };
}

/** A server frame: FIN, opcode, unmasked, the shortest length encoding. */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  const b0 = (fin ? 0x80 : 0) | opcode;
  if (payload.length < 126) return Buffer.concat([Buffer.from([b0, payload.length]), payload]);
  if (payload.length < 65536) {
    const head = Buffer.from([b0, 126, 0, 0]);
    head.writeUInt16BE(payload.length, 2);
    return Buffer.concat([head, payload]);
  }
  const head = Buffer.alloc(10);
  head[0] = b0;
  head[1] = 127;
  head.writeBigUInt64BE(BigInt(payload.length), 2);
  return Buffer.concat([head, payload]);
}

function joined(pieces: Buffer[]): string {
  return Buffer.concat(pieces).toString('hex');
}

describe('websocket frame reader', () => {
  it('reads a binary message, a ping and a close from literal bytes', () => {
    const r = recorder();
    const reader = new WsFrameReader(r.handlers, 1024);
    reader.push(Buffer.from([0x82, 0x03, 0xaa, 0xbb, 0xcc, 0x89, 0x02, 0x68, 0x69, 0x88, 0x04, 0x03, 0xe8, 0x6f, 0x6b]));
    expect(r.events).toEqual([
      { e: 'start', kind: 'binary' },
      { e: 'piece', bytes: 'aabbcc' },
      { e: 'end' },
      { e: 'ping', payload: 'hi' },
      { e: 'close', code: 1000, reason: 'ok' },
    ]);
  });

  it('hands a payload over as views of the bytes pushed, however the socket cut them', () => {
    const payload = Buffer.alloc(70_000, 7);
    const bytes = frame(0x2, payload);
    const r = recorder();
    const reader = new WsFrameReader(r.handlers, 1 << 20);
    const reads = [bytes.subarray(0, 1), bytes.subarray(1, 3), bytes.subarray(3, 40_000), bytes.subarray(40_000)];
    for (const read of reads) reader.push(read);
    expect(joined(r.pieces)).toBe(payload.toString('hex'));
    // no copies: each piece shares memory with a read
    for (const piece of r.pieces) expect(reads.some((read) => read.buffer === piece.buffer)).toBe(true);
    expect(r.events.at(-1)).toEqual({ e: 'end' });
  });

  it('joins fragments into one message, with control frames between them', () => {
    const r = recorder();
    const reader = new WsFrameReader(r.handlers, 1024);
    reader.push(Buffer.concat([frame(0x2, Buffer.from('ab'), false), frame(0x9, Buffer.from('p')), frame(0x0, Buffer.alloc(0), false), frame(0x0, Buffer.from('cd'))]));
    expect(r.events).toEqual([
      { e: 'start', kind: 'binary' },
      { e: 'piece', bytes: Buffer.from('ab').toString('hex') },
      { e: 'ping', payload: 'p' },
      { e: 'piece', bytes: Buffer.from('cd').toString('hex') },
      { e: 'end' },
    ]);
  });

  it('reads the same events whatever the split (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(0x1, 0x2, 0x9, 0xa), fc.uint8Array({ maxLength: 300 })), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map(([op, data]) => frame(op, Buffer.from(data.subarray(0, op >= 0x8 ? 125 : data.length)))));
          const whole = recorder();
          new WsFrameReader(whole.handlers, 1 << 20).push(bytes);
          const cut = recorder();
          const reader = new WsFrameReader(cut.handlers, 1 << 20);
          let at = 0;
          for (let i = 0; at < bytes.length; i += 1) {
            const n = cuts[i % cuts.length] as number;
            reader.push(bytes.subarray(at, at + n));
            at += n;
          }
          const merge = (events: Event[]): Event[] => {
            const out: Event[] = [];
            for (const event of events) {
              const last = out.at(-1);
              if (event.e === 'piece' && last?.e === 'piece') last.bytes += event.bytes;
              else out.push({ ...event });
            }
            return out;
          };
          expect(merge(cut.events)).toEqual(merge(whole.events));
        },
      ),
    );
  });

  it.each([
    ['a masked frame', Buffer.from([0x82, 0x81, 0, 0, 0, 0, 0x01]), /masked/],
    ['reserved bits', Buffer.from([0xc2, 0x00]), /reserved bits/],
    ['an unknown opcode', Buffer.from([0x83, 0x00]), /unknown opcode 3/],
    ['a fragmented ping', Buffer.from([0x09, 0x00]), /fragmented control frame/],
    ['a long ping', Buffer.concat([Buffer.from([0x89, 126, 0, 126]), Buffer.alloc(126)]), /control frame of 126 bytes/],
    ['a continuation outside a message', Buffer.from([0x80, 0x00]), /continuation frame outside a message/],
    ['a message inside a fragmented one', Buffer.from([0x02, 0x00, 0x82, 0x00]), /new message began inside/],
    ['a 1-byte close payload', Buffer.from([0x88, 0x01, 0x03]), /1-byte payload/],
  ])('refuses %s (SEEDWIRE_BAD_FRAME)', (_what, bytes, message) => {
    const reader = new WsFrameReader(recorder().handlers, 1024);
    let thrown: unknown;
    try {
      reader.push(bytes);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SeedwireError);
    expect(thrown).toMatchObject({ code: 'SEEDWIRE_BAD_FRAME', message: expect.stringMatching(message) as unknown });
  });

  it('refuses a message longer than its limit before reading its payload, fragments counted together', () => {
    const r = recorder();
    const reader = new WsFrameReader(r.handlers, 100);
    expect(() => reader.push(frame(0x2, Buffer.alloc(101)).subarray(0, 4))).toThrow(expect.objectContaining({ code: 'SEEDWIRE_FRAME_TOO_LARGE' }) as Error);
    const huge = Buffer.from([0x82, 127, 0xff, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => new WsFrameReader(recorder().handlers, 100).push(huge)).toThrow(expect.objectContaining({ code: 'SEEDWIRE_FRAME_TOO_LARGE' }) as Error);
    const fragments = new WsFrameReader(recorder().handlers, 100);
    fragments.push(frame(0x2, Buffer.alloc(60), false));
    expect(() => fragments.push(frame(0x0, Buffer.alloc(60)))).toThrow(expect.objectContaining({ code: 'SEEDWIRE_FRAME_TOO_LARGE' }) as Error);
    expect(r.pieces).toHaveLength(0);
  });

  it('reads nothing after a close frame', () => {
    const r = recorder();
    const reader = new WsFrameReader(r.handlers, 1024);
    reader.push(Buffer.concat([frame(0x8, Buffer.alloc(0)), frame(0x2, Buffer.from('x'))]));
    expect(r.events).toEqual([{ e: 'close', code: null, reason: '' }]);
  });
});
