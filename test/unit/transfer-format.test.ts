import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareNames,
  encodeRecordHeader,
  isExcludedName,
  parseRecordJson,
  parseRecordPrefix,
  TreeDigest,
} from '../../agent/transfer/format.js';
import { checkRecordPath as validateRecordPath } from '../../agent/transfer/record-rules.js';
import { sendTree } from '../../agent/transfer/send.js';
import type { SendPort } from '../../agent/streams/types.js';
import { errorCodeOf } from '../helpers/checks.js';


describe('record encoding', () => {
  it('encodes a file record header as literal bytes', () => {
    const bytes = encodeRecordHeader({ type: 'file', path: 'db/t.ibd', mode: 0o640, mtimeMs: 1000, size: 5 });
    const json = '{"path":"db/t.ibd","mode":416,"mtimeMs":1000,"size":5}';
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x53, 0x52, 0x01, 0x02, 0x00, 0x00, 0x00, json.length]));
    expect(bytes.subarray(8).toString('utf8')).toBe(json);
  });

  it('encodes dir, symlink and end records with their type byte and key order', () => {
    const dir = encodeRecordHeader({ type: 'dir', path: 'db', mode: 0o750, mtimeMs: 2 });
    expect(dir[3]).toBe(1);
    expect(dir.subarray(8).toString()).toBe('{"path":"db","mode":488,"mtimeMs":2}');
    const link = encodeRecordHeader({ type: 'symlink', path: 'l', mode: 0o777, mtimeMs: 3, target: '../x' });
    expect(link[3]).toBe(3);
    expect(link.subarray(8).toString()).toBe('{"path":"l","mode":511,"mtimeMs":3,"target":"../x"}');
    const end = encodeRecordHeader({ type: 'end', files: 1, bytes: 5, digest: 'a'.repeat(64) });
    expect(end[3]).toBe(4);
    expect(end.subarray(8).toString()).toBe(`{"files":1,"bytes":5,"digest":"${'a'.repeat(64)}"}`);
  });

  it('parses what it encodes', () => {
    const bytes = encodeRecordHeader({ type: 'file', path: 'a/b', mode: 0o600, mtimeMs: 7, size: 9 });
    const prefix = parseRecordPrefix(bytes);
    expect(prefix).toEqual({ type: 'file', jsonLength: bytes.length - 8 });
    expect(parseRecordJson(prefix.type, bytes.subarray(8))).toEqual({ type: 'file', path: 'a/b', mode: 0o600, mtimeMs: 7, size: 9 });
  });

  it('rejects a bad magic, an unknown type and a bad header', () => {
    expect(errorCodeOf(() => parseRecordPrefix(Buffer.from([0x53, 0x58, 1, 2, 0, 0, 0, 2])))).toBe('SEEDWIRE_BAD_FRAME');
    expect(errorCodeOf(() => parseRecordPrefix(Buffer.from([0x53, 0x52, 1, 9, 0, 0, 0, 2])))).toBe('SEEDWIRE_BAD_FRAME');
    expect(errorCodeOf(() => parseRecordPrefix(Buffer.from([0x53, 0x52, 2, 1, 0, 0, 0, 2])))).toBe('SEEDWIRE_PROTOCOL_VERSION');
    expect(errorCodeOf(() => parseRecordJson('file', Buffer.from('{"path":"a","mode":1,"mtimeMs":1}')))).toBe('SEEDWIRE_BAD_FRAME');
    expect(errorCodeOf(() => parseRecordJson('file', Buffer.from('{"path":"../a","mode":1,"mtimeMs":1,"size":1}')))).toBe('SEEDWIRE_PATH_ESCAPE');
  });
});

describe('paths and names', () => {
  it('refuses paths that could escape the root', () => {
    for (const bad of ['', '/abs', '../x', 'a/../../x', 'a//b', './a', 'a/.', 'a\0b', 'a/']) {
      expect(errorCodeOf(() => validateRecordPath(bad)), bad).toBe('SEEDWIRE_PATH_ESCAPE');
    }
    for (const good of ['a', 'a/b', '..a', 'a..', '.hidden', 'db/@0024t.ibd']) expect(errorCodeOf(() => validateRecordPath(good)), good).toBe('no error');
  });

  it('excludes identity, pid, socket and marker files', () => {
    for (const name of ['auto.cnf', 'x.pid', 'mysqld.sock', 'mysqld.sock.lock', '.seedwire-incomplete']) expect(isExcludedName(name), name).toBe(true);
    for (const name of ['ibdata1', 'auto.cnf.bak', 'pid', 'sock']) expect(isExcludedName(name), name).toBe(false);
  });

  it('orders names bytewise', () => {
    expect(['b', 'a-c', 'a', 'B', 'é', 'z'].sort(compareNames)).toEqual(['B', 'a', 'a-c', 'b', 'z', 'é']);
  });

  it('computes the digest over path, size and sha256 lines', () => {
    const d = new TreeDigest();
    d.add({ path: 'a', size: 1, sha256: '0'.repeat(64) });
    const want = createHash('sha256').update(`a\x001\x00${'0'.repeat(64)}\n`).digest('hex');
    expect(d.summary()).toEqual({ files: 1, bytes: 1, digest: want });
  });
});

/** A SendPort with unlimited credit that just collects the stream's bytes. */
function collectingPort(): { port: SendPort; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  let next: number | null = null;
  return {
    port: {
      limit: Number.MAX_SAFE_INTEGER,
      ready: async () => undefined,
      send(offset, rawLength, codec, payload) {
        if ((next !== null && offset !== next) || codec !== 'none' || payload.length !== rawLength) throw new Error('out of order');
        parts.push(Buffer.from(payload));
        next = offset + rawLength;
      },
      close: () => undefined,
    },
    bytes: () => Buffer.concat(parts),
  };
}

describe('stream determinism', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'seedwire-format-'));
    await mkdir(join(root, 'b', 'c'), { recursive: true });
    await writeFile(join(root, 'b', 'c', 'f'), 'hello');
    await writeFile(join(root, 'a-file'), Buffer.alloc(3000, 1));
    await writeFile(join(root, 'empty'), '');
    await writeFile(join(root, 'auto.cnf'), 'skip');
    await symlink('b/c/f', join(root, 'link'));
    await chmod(join(root, 'a-file'), 0o640);
    for (const p of ['b/c/f', 'a-file', 'empty', 'b/c', 'b']) await utimes(join(root, p), 1_700_000_000, 1_700_000_000);
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('yields the same bytes and digest for the same tree, in any chunking, and each suffix from an offset', async () => {
    const run = async (offset: number, chunkBytes: number): Promise<{ bytes: Buffer; digest: string }> => {
      const c = collectingPort();
      const summary = await sendTree({ root, port: c.port, offset, compression: 'none', signal: new AbortController().signal, chunkBytes });
      return { bytes: c.bytes(), digest: summary.digest };
    };
    const a = await run(0, 1024 * 1024);
    const b = await run(0, 7);
    expect(b.bytes).toEqual(a.bytes);
    expect(b.digest).toBe(a.digest);
    expect(a.bytes.includes(Buffer.from('auto.cnf'))).toBe(false);
    // Records in order: a-file, b, b/c, b/c/f, empty, link, end.
    const paths = [...a.bytes.toString('latin1').matchAll(/"path":"([^"]+)"/g)].map((m) => m[1]);
    expect(paths).toEqual(['a-file', 'b', 'b/c', 'b/c/f', 'empty', 'link']);
    // Every offset (header, data, trailer, end) resumes to exactly the same suffix.
    for (const offset of [1, 8, 60, 100, 2000, a.bytes.length - 40, a.bytes.length - 1, a.bytes.length]) {
      const s = await run(offset, 64);
      expect(s.bytes.equals(a.bytes.subarray(offset)), `offset ${offset}`).toBe(true);
      expect(s.digest).toBe(a.digest);
    }
  });
});
