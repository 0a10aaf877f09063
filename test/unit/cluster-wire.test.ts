/** The cluster bus's pure parts: subject encoding of agent ids, the --bus URL, message parsing, output splitting. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkAdvertiseUrl } from '../../server-stub/cluster/cluster.js';
import { splitUtf8 } from '../../server-stub/cluster/holder.js';
import { parseBusUrl } from '../../server-stub/cluster/link.js';
import { decodeMessage, encodeMessage, fromWireError, StreamMessage } from '../../server-stub/cluster/messages.js';
import { decodeAgentToken, encodeAgentToken, SUBJECTS } from '../../server-stub/cluster/subjects.js';

describe('agent ids in subjects', () => {
  it('encodes any id as one subject token and back', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), (id) => {
        const token = encodeAgentToken(id);
        expect(token).toMatch(/^a[A-Za-z0-9_-]*$/);
        expect(decodeAgentToken(token)).toBe(id);
      }),
    );
  });

  it('keeps ids with dots, colons, at signs and wildcards apart', () => {
    const ids = ['db.1', 'db:1', 'db@1', 'db*', 'db>', 'db', 'db.1.x'];
    const subjects = ids.map((id) => SUBJECTS.agent(id, 'start'));
    expect(new Set(subjects).size).toBe(ids.length);
    for (const subject of subjects) expect(subject.split('.')).toHaveLength(4);
    expect(decodeAgentToken('not.a.token')).toBeNull();
  });
});

describe('parseBusUrl', () => {
  it('takes credentials out of what is shown and given as servers', () => {
    expect(parseBusUrl('nats://user:p%40ss@nats-1:4223')).toEqual({ servers: ['nats-1:4223'], shown: 'nats://nats-1:4223', auth: { user: 'user', pass: 'p@ss' }, tls: false });
    expect(parseBusUrl('nats://tok3n@127.0.0.1')).toMatchObject({ servers: ['127.0.0.1:4222'], auth: { token: 'tok3n' } });
    expect(parseBusUrl('tls://a:4222,tls://b:4222')).toMatchObject({ servers: ['a:4222', 'b:4222'], shown: 'tls://a:4222,tls://b:4222', tls: true, auth: null });
  });

  it('refuses what is not a NATS URL, naming the flag and never the password', () => {
    expect(() => parseBusUrl('http://u:secret@x:1')).toThrow(/--bus: scheme must be nats:\/\/ or tls:\/\//);
    expect(() => parseBusUrl('nats://x:1/path')).toThrow(/--bus: a NATS URL has no path/);
    let message = '';
    try {
      parseBusUrl('nats//u:secret@x');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^--bus: expected nats:\/\/host:port/);
    expect(message).not.toContain('secret');
  });
});

describe('checkAdvertiseUrl', () => {
  it('keeps the origin of an http(s) URL and refuses others', () => {
    expect(checkAdvertiseUrl('https://ctl-2.example:7070/')).toBe('https://ctl-2.example:7070');
    expect(() => checkAdvertiseUrl('ws://x')).toThrow(/--advertise-url: expected http/);
    expect(() => checkAdvertiseUrl('https://u:p@x')).toThrow(/credentials/);
    expect(() => checkAdvertiseUrl('nope')).toThrow(/--advertise-url: not a URL/);
  });
});

describe('messages', () => {
  it('parses a stream message and names the field of a bad one', () => {
    const bytes = encodeMessage({ kind: 'output', n: 1, seq: 0, stream: 'stdout', data: 'hi\n' });
    expect(decodeMessage(StreamMessage, bytes, 'routed output')).toEqual({ kind: 'output', n: 1, seq: 0, stream: 'stdout', data: 'hi\n' });
    expect(() => decodeMessage(StreamMessage, encodeMessage({ kind: 'output', n: 0, seq: 0, stream: 'stdout', data: '' }), 'routed output')).toThrow(/routed output: n:/);
    expect(() => decodeMessage(StreamMessage, Buffer.from('{'), 'routed output')).toThrow(/routed output: not JSON/);
  });

  it("keeps a peer's error code when it is one of ours", () => {
    expect(fromWireError({ code: 'SEEDWIRE_AGENT_OFFLINE', message: 'x' })).toMatchObject({ code: 'SEEDWIRE_AGENT_OFFLINE', message: 'x' });
    expect(fromWireError({ code: 'ELSEWHERE', message: 'x' })).toMatchObject({ code: 'SEEDWIRE_INTERNAL', message: 'ELSEWHERE: x' });
  });
});

describe('splitUtf8', () => {
  it('splits into pieces within the byte limit that join back to the text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), fc.integer({ min: 4, max: 64 }), (text, maxBytes) => {
        const pieces = splitUtf8(text, maxBytes);
        expect(pieces.join('')).toBe(text);
        for (const piece of pieces) expect(Buffer.byteLength(piece)).toBeLessThanOrEqual(maxBytes);
      }),
    );
  });
});
