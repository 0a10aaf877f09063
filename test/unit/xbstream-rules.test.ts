/**
 * The backup path's guard on literal xbstream bytes: every hostile chunk a rogue source could
 * send is refused while its header is still held back from the extractor.
 */
import { describe, expect, it } from 'vitest';
import { XbstreamInspector } from '../../agent/transfer/xbstream.js';
import { SeedwireError } from '../../shared/errors.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** A 'P' chunk: magic, flags 0, type 'P', path length (u32le), path, payload length (u64le), offset (u64le), CRC (u32le), payload. */
function payloadChunk(path: Buffer | string, payload: Buffer, declared = payload.length): Buffer {
  const p = typeof path === 'string' ? Buffer.from(path, 'utf8') : path;
  const len = Buffer.alloc(4);
  len.writeUInt32LE(p.length);
  const lengths = Buffer.alloc(20);
  lengths.writeBigUInt64LE(BigInt(declared), 0);
  return Buffer.concat([Buffer.from('XBSTCK01', 'latin1'), hex('00 50'), len, p, lengths, payload]);
}

/** Pushes `stream` in pieces, returning what the guard lets through to the extractor and the error, if any. */
function guard(stream: Buffer, piece: number, maxBytes: number | null = null): { passed: Buffer; error: SeedwireError | null } {
  const inspector = new XbstreamInspector({ maxBytes });
  const out: Buffer[] = [];
  let held = Buffer.alloc(0);
  try {
    for (let at = 0; at < stream.length; at += piece) {
      const raw = stream.subarray(at, at + piece);
      inspector.push(raw);
      const ready = Buffer.concat([held, raw]);
      const pass = ready.length - inspector.unvalidatedBytes;
      out.push(ready.subarray(0, pass));
      held = Buffer.from(ready.subarray(pass));
    }
    inspector.end();
    return { passed: Buffer.concat(out), error: null };
  } catch (error) {
    if (!(error instanceof SeedwireError)) throw error;
    return { passed: Buffer.concat(out), error };
  }
}

describe('xbstream guard: literal bytes', () => {
  it('passes a well-formed chunk through whole, in any piece size', () => {
    const literal = hex('58 42 53 54 43 4b 30 31 00 50 07 00 00 00 69 62 64 61 74 61 31 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 61 62 63');
    expect(literal).toEqual(payloadChunk('ibdata1', Buffer.from('abc')));
    for (const piece of [1, 3, 14, 21, literal.length]) {
      const { passed, error } = guard(literal, piece);
      expect(error).toBeNull();
      expect(passed).toEqual(literal);
    }
  });

  const good = payloadChunk('db/t.ibd', Buffer.alloc(64, 7));
  const hostile: Array<[string, Buffer]> = [
    ['an absolute path', payloadChunk('/etc/cron.d/evil', Buffer.from('x'))],
    ['.. at the start', payloadChunk('../x', Buffer.from('x'))],
    ['.. in the middle', payloadChunk('db/../../x', Buffer.from('x'))],
    ['the seed marker', payloadChunk('.seedwire-incomplete', Buffer.from('x'))],
    ['the seed marker behind ./', payloadChunk('./.seedwire-incomplete', Buffer.from('x'))],
    ['the marker deeper down', payloadChunk('db/.seedwire-incomplete', Buffer.from('x'))],
    ['auto.cnf', payloadChunk('auto.cnf', Buffer.from('x'))],
    ['a pid file', payloadChunk('host.pid', Buffer.from('x'))],
    ['a socket', payloadChunk('mysql.sock', Buffer.from('x'))],
    ['a newline', payloadChunk('a\nb', Buffer.from('x'))],
    ['an escape sequence', payloadChunk('\u001b[2Jx', Buffer.from('x'))],
    ['NUL', payloadChunk('a\0b', Buffer.from('x'))],
    ['bytes that are not UTF-8', payloadChunk(hex('61 c0 ae 2e'), Buffer.from('x'))],
    ['a component over 255 bytes', payloadChunk('n'.repeat(256), Buffer.from('x'))],
    ['a path that is only ./', payloadChunk('./', Buffer.from('x'))],
  ];

  for (const [what, chunk] of hostile) {
    it(`refuses ${what}, and the extractor sees nothing of that chunk`, () => {
      const stream = Buffer.concat([good, chunk]);
      for (const piece of [1, 9, 40, stream.length]) {
        const { passed, error } = guard(stream, piece);
        expect(error?.code, what).toBe('SEEDWIRE_PATH_ESCAPE');
        // eslint-disable-next-line no-control-regex -- no raw control character may reach a message
        expect(error?.message).not.toMatch(/[\n\u001b\u0000]/);
        expect(passed.length, `${what} in pieces of ${piece}`).toBeLessThanOrEqual(good.length);
        expect(good.subarray(0, passed.length)).toEqual(passed);
      }
    });
  }

  it('refuses a declared total past maxBytes before the payload', () => {
    const first = payloadChunk('a', Buffer.alloc(600));
    const second = payloadChunk('b', Buffer.alloc(0), 600); // declares 600, carries none yet
    const { passed, error } = guard(Buffer.concat([first, second]), 7, 1000);
    expect(error?.code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(error?.message).toContain('"b"');
    expect(error?.message).toContain('1000');
    expect(passed.length).toBeLessThanOrEqual(first.length);
    // A single chunk declaring more than everything allowed.
    expect(guard(payloadChunk('ibdata1', Buffer.alloc(0), 2 ** 40), 4096, 1_000_000).error?.code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(guard(Buffer.concat([first, payloadChunk('b', Buffer.alloc(400))]), 7, 1000).error).toBeNull();
  });
});
