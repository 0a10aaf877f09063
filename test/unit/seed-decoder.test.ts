/**
 * The seed-stream decoder on literal bytes: what a well-formed stream decodes to, and every kind
 * of hostile record a rogue source could send, refused before any event names it.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SeedStreamDecoder, type SeedEvent } from '../../agent/transfer/decoder.js';
import { checkSymlinkTarget, permissionBits, showPath, symlinkStaysInside } from '../../agent/transfer/record-rules.js';
import { SeedwireError } from '../../shared/errors.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const sha = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** One record: the 8-byte prefix written out, then the JSON header exactly as given. */
function record(type: 1 | 2 | 3 | 4, json: string): Buffer {
  const body = Buffer.from(json, 'utf8');
  const prefix = Buffer.from([0x53, 0x52, 0x01, type, 0, 0, 0, 0]);
  prefix.writeUInt32BE(body.length, 4);
  return Buffer.concat([prefix, body]);
}

/** Decodes all of `bytes` (in pieces of `piece` bytes), returning the events or the error thrown. */
function decode(bytes: Buffer, options: ConstructorParameters<typeof SeedStreamDecoder>[0] = {}, piece = bytes.length): { events: SeedEvent[]; error: SeedwireError | null } {
  const decoder = new SeedStreamDecoder(options);
  const events: SeedEvent[] = [];
  try {
    for (let at = 0; at < bytes.length; at += Math.max(1, piece)) {
      decoder.push(bytes.subarray(at, at + Math.max(1, piece)));
      for (let e = decoder.next(); e !== null; e = decoder.next()) events.push(e.kind === 'data' ? { ...e, bytes: Buffer.from(e.bytes) } : e);
    }
    return { events, error: null };
  } catch (error) {
    if (!(error instanceof SeedwireError)) throw error;
    return { events, error };
  }
}

const EXAMPLE_DATA = Buffer.from('hello');
/** The example of docs/seed-stream.md: a 5-byte file db/t.ibd, mode 0640, then its trailer. */
const EXAMPLE = Buffer.concat([
  hex('53 52 01 02 00 00 00 36'),
  Buffer.from('{"path":"db/t.ibd","mode":416,"mtimeMs":1000,"size":5}'),
  EXAMPLE_DATA,
  sha(EXAMPLE_DATA),
]);

describe('seed-stream decoder: well-formed bytes', () => {
  it('decodes the documented example into entry, data and trailer events with stream offsets', () => {
    const { events, error } = decode(EXAMPLE);
    expect(error).toBeNull();
    expect(events.map((e) => e.kind)).toEqual(['entry', 'data', 'trailer']);
    expect(events[0]).toEqual({ kind: 'entry', header: { type: 'file', path: 'db/t.ibd', mode: 0o640, mtimeMs: 1000, size: 5 }, start: 0, end: 62 });
    expect(events[1]).toMatchObject({ kind: 'data', end: 67 });
    expect((events[1] as { bytes: Buffer }).bytes.toString()).toBe('hello');
    expect(events[2]).toEqual({ kind: 'trailer', sha256: sha(EXAMPLE_DATA), end: 99 });
  });

  it('gives the same events fed one byte at a time', () => {
    const whole = decode(EXAMPLE);
    const bytewise = decode(EXAMPLE, {}, 1);
    const joinData = (events: SeedEvent[]) => Buffer.concat(events.flatMap((e) => (e.kind === 'data' ? [e.bytes] : []))).toString();
    expect(bytewise.events.filter((e) => e.kind !== 'data')).toEqual(whole.events.filter((e) => e.kind !== 'data'));
    expect(joinData(bytewise.events)).toBe(joinData(whole.events));
  });

  it('ends with the end record and refuses bytes after it', () => {
    const end = record(4, `{"files":0,"bytes":0,"digest":"${'0'.repeat(64)}"}`);
    expect(decode(end).events.map((e) => e.kind)).toEqual(['end']);
    expect(decode(Buffer.concat([end, hex('00')])).error?.code).toBe('SEEDWIRE_BAD_FRAME');
  });

  it('resumes inside a file: data then trailer, from the given offset', () => {
    const header = { type: 'file' as const, path: 'db/t.ibd', mode: 0o640, mtimeMs: 1000, size: 5 };
    const { events, error } = decode(Buffer.concat([Buffer.from('lo'), sha(EXAMPLE_DATA)]), { offset: 65, inFile: { header, written: 3 } });
    expect(error).toBeNull();
    expect(events.map((e) => [e.kind, e.end])).toEqual([
      ['data', 67],
      ['trailer', 99],
    ]);
  });

  it('refuses a bad magic, an unknown version or type, a zero or oversized header length, a non-JSON header', () => {
    expect(decode(hex('58 58 01 01 00 00 00 02 7b 7d')).error?.code).toBe('SEEDWIRE_BAD_FRAME');
    expect(decode(hex('53 52 02 01 00 00 00 02 7b 7d')).error?.code).toBe('SEEDWIRE_PROTOCOL_VERSION');
    expect(decode(hex('53 52 01 09 00 00 00 02 7b 7d')).error?.code).toBe('SEEDWIRE_BAD_FRAME');
    expect(decode(hex('53 52 01 01 00 00 00 00')).error?.code).toBe('SEEDWIRE_BAD_FRAME');
    expect(decode(hex('53 52 01 01 7f ff ff ff')).error?.code).toBe('SEEDWIRE_BAD_FRAME');
    const notJson = decode(Buffer.concat([hex('53 52 01 01 00 00 00 09'), Buffer.from('{"secret:')]));
    expect(notJson.error?.code).toBe('SEEDWIRE_BAD_FRAME');
    expect(notJson.error?.message).not.toContain('secret');
    const extraKey = decode(record(1, '{"path":"a","mode":448,"mtimeMs":0,"secret-key":1}'));
    expect(extraKey.error?.code).toBe('SEEDWIRE_BAD_FRAME');
    expect(extraKey.error?.message).not.toContain('secret-key');
  });

  it('refuses a stream that ends inside a record', () => {
    const decoder = new SeedStreamDecoder();
    decoder.push(EXAMPLE.subarray(0, 70));
    while (decoder.next() !== null);
    expect(() => decoder.finish()).toThrow(expect.objectContaining({ code: 'SEEDWIRE_DISCONNECTED' }));
  });
});

describe('seed-stream decoder: hostile records', () => {
  const fileJson = (path: string, size = 4) => `{"path":${path},"mode":420,"mtimeMs":0,"size":${size}}`;
  const hostile: Array<[string, Buffer]> = [
    ['the marker as a symlink', record(3, '{"path":".seedwire-incomplete","mode":511,"mtimeMs":0,"target":"/etc/shadow"}')],
    ['the marker as a file', record(2, fileJson('".seedwire-incomplete"'))],
    ['the marker deeper down', record(2, fileJson('"db/.seedwire-incomplete"'))],
    ['auto.cnf', record(2, fileJson('"auto.cnf"'))],
    ['a file under a directory named auto.cnf', record(2, fileJson('"auto.cnf/x"'))],
    ['a directory named auto.cnf', record(1, '{"path":"auto.cnf","mode":448,"mtimeMs":0}')],
    ['a pid file', record(2, fileJson('"run/mysqld.pid"'))],
    ['a socket file', record(3, '{"path":"mysql.sock","mode":511,"mtimeMs":0,"target":"x"}')],
    ['a socket lock', record(2, fileJson('"mysql.sock.lock"'))],
    ['a newline', record(2, fileJson('"a\\nb"'))],
    ['an escape sequence', record(2, fileJson('"\\u001b[31mred"'))],
    ['DEL', record(2, fileJson('"a\\u007f"'))],
    ['a C1 control', record(2, fileJson('"a\\u0085b"'))],
    ['a line separator', record(2, fileJson('"a\\u2028b"'))],
    ['a right-to-left override', record(2, fileJson('"txt.\\u202eibd"'))],
    ['NUL', record(2, fileJson('"a\\u0000b"'))],
    ['a lone surrogate', record(2, fileJson('"a\\ud800"'))],
    ['..', record(2, fileJson('".."'))],
    ['a/../b', record(2, fileJson('"a/../../b"'))],
    ['an absolute path', record(2, fileJson('"/etc/cron.d/x"'))],
    ['a . component', record(1, '{"path":"./a","mode":448,"mtimeMs":0}')],
    ['an empty component', record(2, fileJson('"a//b"'))],
    ['a trailing slash', record(2, fileJson('"a/"'))],
    ['a component over 255 bytes', record(2, fileJson(`"${'n'.repeat(256)}"`))],
    ['a path over 4095 bytes', record(2, fileJson(`"${'d/'.repeat(2047)}xy"`))],
  ];

  for (const [what, bytes] of hostile) {
    it(`refuses ${what} before any event names it`, () => {
      for (const piece of [1, 5, bytes.length]) {
        const { events, error } = decode(bytes, {}, piece);
        expect(error?.code, what).toBe('SEEDWIRE_PATH_ESCAPE');
        expect(events).toEqual([]);
        expect(error?.message).toMatch(/^refusing record "/);
        // eslint-disable-next-line no-control-regex -- no raw control character may reach a message
        expect(error?.message).not.toMatch(/[\n\r\u001b\u007f\u0085\u2028\u202e\u0000]/);
      }
    });
  }

  it('refuses an empty path (schema) too', () => {
    expect(decode(record(2, fileJson('""'))).error?.code).toBe('SEEDWIRE_BAD_FRAME');
  });

  it('names the record with control characters escaped and a long path capped', () => {
    expect(decode(record(2, fileJson('"a\\nb"'))).error?.message).toContain('"a\\nb"');
    expect(decode(record(2, fileJson('"txt.\\u202eibd"'))).error?.message).toContain('"txt.\\u202eibd"');
    const long = decode(record(2, fileJson(`"${'n'.repeat(300)}"`))).error?.message ?? '';
    expect(long).toContain('(300 characters)');
    expect(long.length).toBeLessThan(400);
    expect(showPath('x'.repeat(10_000)).length).toBeLessThan(200);
  });

  it('refuses a declared size above maxBytes before the file event, alone or summed', () => {
    const big = decode(record(2, fileJson('"ibdata1"', 1_000_001)), { maxBytes: 1_000_000 });
    expect(big.error?.code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(big.error?.message).toContain('1000000');
    expect(big.events).toEqual([]);
    const data = Buffer.alloc(600);
    const first = Buffer.concat([record(2, fileJson('"a"', 600)), data, sha(data)]);
    const summed = decode(Buffer.concat([first, record(2, fileJson('"b"', 600))]), { maxBytes: 1000 });
    expect(summed.error?.code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(summed.error?.message).toContain('"b"');
    expect(summed.events.map((e) => e.kind)).toEqual(['entry', 'data', 'trailer']);
    // A resumed receive counts what came before the resume point.
    expect(decode(record(2, fileJson('"c"', 600)), { maxBytes: 1000, declaredBefore: 600 }).error?.code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(decode(record(2, fileJson('"c"', 400)), { maxBytes: 1000, declaredBefore: 600 }).error).toBeNull();
  });

  it('accepts setuid, setgid and sticky bits in the header; the writer keeps permission bits only', () => {
    const { events } = decode(record(1, `{"path":"d","mode":${0o7777},"mtimeMs":0}`));
    expect(events).toHaveLength(1);
    expect(permissionBits(0o4755)).toBe(0o755);
    expect(permissionBits(0o2775)).toBe(0o775);
    expect(permissionBits(0o1777)).toBe(0o777);
  });
});

describe('symlink targets', () => {
  const root = '/var/lib/mysql';
  it('keeps relative targets that climb no higher than the datadir and then only descend', () => {
    expect(symlinkStaysInside(root, 'l', 'db/t.ibd')).toBe(true);
    expect(symlinkStaysInside(root, 'db/l', '../ibdata1')).toBe(true);
    expect(symlinkStaysInside(root, 'db/l', '..')).toBe(true);
    expect(symlinkStaysInside(root, 'l', '.')).toBe(true);
    expect(symlinkStaysInside(root, 'l', '..')).toBe(false);
    expect(symlinkStaysInside(root, 'db/l', '../../etc/passwd')).toBe(false);
    // A `..` after a name could climb out of a symlinked directory.
    expect(symlinkStaysInside(root, 'l2', 'db/l/..')).toBe(false);
    expect(symlinkStaysInside(root, 'l2', 'db/../ibdata1')).toBe(false);
  });

  it('keeps absolute targets only under the datadir, without . or ..', () => {
    expect(symlinkStaysInside(root, 'l', '/var/lib/mysql/db')).toBe(true);
    expect(symlinkStaysInside(root, 'l', '/var/lib/mysql')).toBe(true);
    expect(symlinkStaysInside(root, 'l', '/var/lib/mysql-other/x')).toBe(false);
    expect(symlinkStaysInside(root, 'l', '/var/lib/mysql/../../etc')).toBe(false);
    expect(symlinkStaysInside(root, 'l', '/etc/shadow')).toBe(false);
  });

  it('says why and how to allow it, and refuses control characters even when allowed', () => {
    expect(() => checkSymlinkTarget(root, 'data', '/srv/tablespaces', false)).toThrow(/outside the datadir.*receive\.allowExternalSymlinks/);
    expect(() => checkSymlinkTarget(root, 'data', '/srv/tablespaces', true)).not.toThrow();
    expect(() => checkSymlinkTarget(root, 'data', '/srv/x\ny', true)).toThrow(expect.objectContaining({ code: 'SEEDWIRE_PATH_ESCAPE' }));
  });
});
