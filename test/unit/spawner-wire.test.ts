/** The spawner's pipe framing on literal bytes, and what a command's environment leaves out. */
import { describe, expect, it } from 'vitest';
import { commandEnv } from '../../agent/exec/env.js';
import { encodeFrame, FrameDecoder, parseDone } from '../../agent/exec/spawner/wire.js';

describe('spawner frames', () => {
  it('encodes length, type, id and payload big-endian', () => {
    expect([...encodeFrame(11, 0x01020304, Buffer.from('hi'))]).toEqual([0, 0, 0, 7, 11, 1, 2, 3, 4, 0x68, 0x69]);
    expect([...encodeFrame(20, 0, Buffer.alloc(0))]).toEqual([0, 0, 0, 5, 20, 0, 0, 0, 0]);
  });

  it('decodes frames split anywhere and several per chunk', () => {
    const bytes = Buffer.concat([encodeFrame(10, 1, Buffer.from('4242')), encodeFrame(11, 1, Buffer.from('out')), encodeFrame(13, 1, Buffer.from('{"code":0,"signal":null}'))]);
    for (let cut = 0; cut <= bytes.length; cut += 1) {
      const decoder = new FrameDecoder();
      const frames = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
      expect(frames.map((f) => [f.type, f.id, f.payload.toString()])).toEqual([
        [10, 1, '4242'],
        [11, 1, 'out'],
        [13, 1, '{"code":0,"signal":null}'],
      ]);
    }
  });

  it('refuses a length shorter than the header', () => {
    expect(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 2, 1, 0, 0, 0, 0]))).toThrow(/shorter than its header/);
  });

  it('checks a done payload field by field', () => {
    expect(parseDone(Buffer.from('{"code":3,"signal":null}'))).toEqual({ code: 3, signal: null });
    expect(parseDone(Buffer.from('{"code":null,"signal":"SIGKILL","error":"spawn bash ENOENT"}'))).toEqual({ code: null, signal: 'SIGKILL', error: 'spawn bash ENOENT' });
    expect(() => parseDone(Buffer.from('{"code":"3","signal":null}'))).toThrow(/code/);
    expect(() => parseDone(Buffer.from('[]'))).toThrow(/code/);
  });
});

describe('a command environment', () => {
  it("keeps the agent's environment but not its secrets", () => {
    const env = commandEnv({ PATH: '/bin', HOME: '/root', SEEDWIRE_AGENT_TOKEN: 't', SEEDWIRE_ADMIN_TOKEN: 'a', SEEDWIRE_DATA_DIR: '/d', LANG: undefined });
    expect(env).toEqual({ PATH: '/bin', HOME: '/root', SEEDWIRE_DATA_DIR: '/d' });
  });
});
