/**
 * Property tests of the receiver's decoders: a stream decodes the same whatever its chunking,
 * arbitrary or mutated bytes only ever produce a SeedwireError, and no record that gets through
 * names a path outside the root.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SeedStreamDecoder, type SeedEvent } from '../../agent/transfer/decoder.js';
import { encodeRecordHeader, type RecordHeader } from '../../agent/transfer/format.js';
import { isExcludedName } from '../../agent/transfer/record-rules.js';
import { XbstreamInspector } from '../../agent/transfer/xbstream.js';
import { SeedwireError } from '../../shared/errors.js';

const NAME = fc.stringMatching(/^[a-z0-9_.@-]{1,12}$/).filter((n) => n !== '.' && n !== '..' && !isExcludedName(n));
const ENTRY = fc.oneof(
  fc.record({ type: fc.constant('dir' as const), path: fc.array(NAME, { minLength: 1, maxLength: 3 }), mode: fc.integer({ min: 0, max: 0o7777 }) }),
  fc.record({ type: fc.constant('file' as const), path: fc.array(NAME, { minLength: 1, maxLength: 3 }), mode: fc.integer({ min: 0, max: 0o7777 }), data: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant('symlink' as const), path: fc.array(NAME, { minLength: 1, maxLength: 3 }), mode: fc.constant(0o777), target: NAME }),
);

interface Entry {
  type: 'dir' | 'file' | 'symlink';
  path: string[];
  mode: number;
  data?: Uint8Array;
  target?: string;
}

/** A valid stream of the given entries and its end record. */
function encodeStream(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const path = e.path.join('/');
    let header: RecordHeader;
    if (e.type === 'file') header = { type: 'file', path, mode: e.mode, mtimeMs: 0, size: e.data?.length ?? 0 };
    else if (e.type === 'symlink') header = { type: 'symlink', path, mode: e.mode, mtimeMs: 0, target: e.target ?? 'x' };
    else header = { type: 'dir', path, mode: e.mode, mtimeMs: 0 };
    parts.push(encodeRecordHeader(header));
    if (e.type === 'file') {
      const data = Buffer.from(e.data ?? new Uint8Array());
      parts.push(data, createHash('sha256').update(data).digest());
    }
  }
  parts.push(encodeRecordHeader({ type: 'end', files: 0, bytes: 0, digest: '0'.repeat(64) }));
  return Buffer.concat(parts);
}

/** Decodes `bytes` cut at `cuts`; data events are merged per file so chunkings compare equal. */
function decodeCut(bytes: Buffer, cuts: number[]): Array<Record<string, unknown>> {
  const decoder = new SeedStreamDecoder();
  const out: Array<Record<string, unknown>> = [];
  const bounds = [...new Set([0, ...cuts.map((c) => c % (bytes.length + 1)), bytes.length])].sort((a, b) => a - b);
  for (let i = 0; i + 1 < bounds.length; i += 1) {
    decoder.push(bytes.subarray(bounds[i], bounds[i + 1]));
    for (let e: SeedEvent | null = decoder.next(); e !== null; e = decoder.next()) {
      const last = out.at(-1);
      if (e.kind === 'data' && last?.['kind'] === 'data') last['bytes'] = Buffer.concat([last['bytes'] as Buffer, e.bytes]);
      else out.push(e.kind === 'data' ? { kind: 'data', bytes: Buffer.from(e.bytes) } : { ...e });
    }
  }
  decoder.finish();
  return out;
}

/** Runs `fn`, failing the property if it throws anything but a SeedwireError. */
function onlySeedwireErrors(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof SeedwireError)) throw error;
  }
}

function isContained(path: string): boolean {
  const root = '/datadir';
  const joined = posix.join(root, path);
  return (
    !path.startsWith('/') &&
    joined.startsWith(`${root}/`) &&
    posix.normalize(path) === path &&
    !path.split('/').some((part) => part === '..' || isExcludedName(part)) &&
    // eslint-disable-next-line no-control-regex -- control characters are what is checked
    !/[\u0000-\u001f\u007f-\u009f]/.test(path)
  );
}

describe('seed-stream decoder properties', () => {
  it('decodes a stream fed in random chunks exactly as fed whole', () => {
    fc.assert(
      fc.property(fc.array(ENTRY, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (entries, cuts) => {
        const bytes = encodeStream(entries);
        expect(decodeCut(bytes, cuts)).toEqual(decodeCut(bytes, []));
      }),
      { numRuns: 300 },
    );
  });

  it('throws nothing but a SeedwireError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        onlySeedwireErrors(() => decodeCut(Buffer.from(bytes), []));
      }),
      { numRuns: 500 },
    );
  });

  it('throws nothing but a SeedwireError on a valid stream with bytes changed, cut or inserted', () => {
    fc.assert(
      fc.property(fc.array(ENTRY, { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(), (entries, edits, cutAt) => {
        const bytes = Buffer.from(encodeStream(entries));
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        onlySeedwireErrors(() => decodeCut(bytes.subarray(0, bytes.length - (cutAt % 4)), [cutAt]));
      }),
      { numRuns: 500 },
    );
  });

  it('never lets through a record whose path could land outside the root', () => {
    const hostileName = fc.oneof(
      NAME,
      fc.constantFrom('..', '.', '', '/', '.seedwire-incomplete', 'auto.cnf', 'x.pid', 'm.sock', 'a\nb', '\u001b', '\u0000', '\u2028', '\ud800'),
      fc.string({ unit: 'binary', maxLength: 6 }),
    );
    fc.assert(
      fc.property(fc.array(hostileName, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.constantFrom(1, 2, 3), (names, absolute, type) => {
        const path = `${absolute ? '/' : ''}${names.join('/')}`;
        const json = type === 1 ? { path, mode: 0o755, mtimeMs: 0 } : type === 2 ? { path, mode: 0o644, mtimeMs: 0, size: 0 } : { path, mode: 0o777, mtimeMs: 0, target: 'x' };
        const body = Buffer.from(JSON.stringify(json), 'utf8');
        const prefix = Buffer.from([0x53, 0x52, 0x01, type, 0, 0, 0, 0]);
        prefix.writeUInt32BE(body.length, 4);
        const decoder = new SeedStreamDecoder();
        decoder.push(Buffer.concat([prefix, body]));
        let event: SeedEvent | null = null;
        onlySeedwireErrors(() => {
          event = decoder.next();
        });
        const got = event as SeedEvent | null;
        if (got?.kind === 'entry') expect(isContained(got.header.path), JSON.stringify(path)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('xbstream guard properties', () => {
  it('throws nothing but a SeedwireError on random bytes, and holds back what it has not checked', () => {
    const magic = Buffer.from('XBSTCK01', 'latin1');
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 1024 }), (withMagic, tail) => {
        const bytes = Buffer.concat([withMagic ? magic : Buffer.alloc(0), Buffer.from(tail)]);
        const inspector = new XbstreamInspector({ maxBytes: 10_000 });
        onlySeedwireErrors(() => inspector.push(bytes));
        expect(inspector.unvalidatedBytes).toBeLessThanOrEqual(14 + 511 + 4 + 20);
      }),
      { numRuns: 500 },
    );
  });

  it('accepts only contained paths', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (path) => {
        const p = Buffer.from(path, 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(p.length);
        const chunk = Buffer.concat([Buffer.from('XBSTCK01', 'latin1'), Buffer.from([0, 0x45]), len, p]);
        const inspector = new XbstreamInspector();
        onlySeedwireErrors(() => inspector.push(chunk));
        for (const accepted of inspector.paths) expect(isContained(accepted), JSON.stringify(accepted)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
