import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Session } from '../../agent/connection/session.js';
import { ConnectionStreamPort } from '../../agent/streams/port.js';
import type { ReceivedChunk } from '../../agent/streams/types.js';
import { decodeDataFrame, encodeDataFrame } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { Frame } from '../../shared/frames.js';

/** An in-memory session: records frames, lets the test decide when queued bytes are written. */
function makeSession() {
  const ended = new AbortController();
  const frames: Frame[] = [];
  const writes: Array<{ bytes: number; done?: (error?: Error) => void }> = [];
  const sent: Buffer[] = [];
  let buffered = 0;
  const session: Session = {
    id: 's1',
    signal: ended.signal,
    send: (frame) => (frames.push(frame), true),
    sendBinary: (data, done) => {
      buffered += data.length;
      sent.push(data);
      writes.push({ bytes: data.length, ...(done ? { done } : {}) });
      return true;
    },
    get bufferedAmount() {
      return buffered;
    },
  };
  const writeOne = (): void => {
    const w = writes.shift();
    if (!w) return;
    buffered -= w.bytes;
    w.done?.();
  };
  const drop = (): void => ended.abort();
  return { session, frames, sent, writeOne, drop, get buffered() { return buffered; } };
}

const log = pino({ level: 'silent' });
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function track(promise: Promise<void>): { settled: () => boolean; result: Promise<unknown> } {
  let done = false;
  const result = promise.then(
    () => ((done = true), 'ok'),
    (error: unknown) => ((done = true), error),
  );
  return { settled: () => done, result };
}

describe('stream port', () => {
  it('send: ready() waits for credit', async () => {
    const s = makeSession();
    const port = new ConnectionStreamPort(() => s.session, log);
    port.handleCredit({ t: 'credit', stream: 1, limit: 10 });
    const sender = port.openSend(1);
    await sender.ready(0, 10, new AbortController().signal);
    const waiting = track(sender.ready(10, 5, new AbortController().signal));
    await tick();
    expect(waiting.settled()).toBe(false);
    port.handleCredit({ t: 'credit', stream: 1, limit: 14 });
    await tick();
    expect(waiting.settled()).toBe(false);
    port.handleCredit({ t: 'credit', stream: 1, limit: 15 });
    expect(await waiting.result).toBe('ok');
    expect(sender.limit).toBe(15);
  });

  it('send: pauses above the high watermark until writes bring it under the low one', async () => {
    const s = makeSession();
    const port = new ConnectionStreamPort(() => s.session, log, { high: 100, low: 50 });
    port.handleCredit({ t: 'credit', stream: 1, limit: 1_000_000 });
    const sender = port.openSend(1);
    for (let i = 0; i < 4; i++) sender.send(i * 40, 16, 'none', Buffer.alloc(16)); // 4 frames of 40 bytes
    expect(s.buffered).toBe(160);
    const waiting = track(sender.ready(64, 16, new AbortController().signal));
    await tick();
    expect(waiting.settled()).toBe(false);
    s.writeOne(); // 120
    s.writeOne(); // 80: below high but not below low: still paused
    await tick();
    expect(waiting.settled()).toBe(false);
    s.writeOne(); // 40
    expect(await waiting.result).toBe('ok');
  });

  it('send: a frame buffer is reused once written, never while ws may still hold it; the payload is copied at once', async () => {
    const s = makeSession();
    const streams = new ConnectionStreamPort(() => s.session, log);
    streams.handleCredit({ t: 'credit', stream: 1, limit: 1_000_000 });
    const sender = streams.openSend(1);
    const payload = Buffer.from('first');
    sender.send(0, 5, 'none', payload);
    payload.write('XXXXX'); // the caller reuses its buffer at once
    sender.send(5, 5, 'none', Buffer.from('other'));
    const [a, b] = s.sent as [Buffer, Buffer];
    expect(a.buffer).not.toBe(b.buffer); // the first is not written yet: a second buffer
    expect(decodeDataFrame(a).payload.toString()).toBe('first');
    s.writeOne(); // the first frame's write callback: its buffer may be reused
    sender.send(10, 5, 'none', Buffer.from('third'));
    expect(s.sent[2]!.buffer).toBe(a.buffer);
    expect(decodeDataFrame(s.sent[2]!)).toMatchObject({ offset: 10, payload: Buffer.from('third') });
    expect(decodeDataFrame(b).payload.toString()).toBe('other');
  });

  it('send in place: the frame is the payload\'s own memory with the header in its room, released only once written', () => {
    const s = makeSession();
    const streams = new ConnectionStreamPort(() => s.session, log);
    streams.handleCredit({ t: 'credit', stream: 3, limit: 1_000_000 });
    const sender = streams.openSend(3);
    const chunk = Buffer.allocUnsafeSlow(24 + 6).subarray(24);
    chunk.write('in-pla');
    let released = 0;
    sender.send(100, 6, 'none', chunk, { released: () => (released += 1) });
    const frame = s.sent[0]!;
    expect(frame.buffer).toBe(chunk.buffer);
    expect(frame.byteOffset).toBe(0);
    expect(decodeDataFrame(frame)).toMatchObject({ stream: 3, offset: 100, rawLength: 6, payload: Buffer.from('in-pla') });
    expect(released).toBe(0); // ws still holds it
    s.writeOne();
    expect(released).toBe(1);
    const noRoom = Buffer.allocUnsafeSlow(3); // its own ArrayBuffer: nothing before it
    expect(() => sender.send(106, 3, 'none', noRoom.subarray(0), { released: () => undefined })).toThrow(expect.objectContaining({ code: 'SEEDWIRE_INTERNAL' }) as Error);
  });

  it('receive: keeps a payload that fills its message as a view, copies a small one out of a large buffer', async () => {
    const s = makeSession();
    const port = new ConnectionStreamPort(() => s.session, log);
    const receiver = port.openReceive(7);
    const whole = encodeDataFrame({ stream: 7, offset: 0, rawLength: 4096, codec: 'none', payload: Buffer.alloc(4096, 1) }, Buffer.allocUnsafeSlow(4096 + 24));
    port.handleBinary(whole);
    const readBuffer = Buffer.allocUnsafeSlow(64 * 1024); // a socket read holding one small frame
    const small = encodeDataFrame({ stream: 7, offset: 4096, rawLength: 3, codec: 'none', payload: Buffer.from('abc') }, readBuffer);
    port.handleBinary(small);
    readBuffer.fill(0); // the read buffer is not the queue's: the small payload was copied
    receiver.close();
    const got: ReceivedChunk[] = [];
    for await (const chunk of receiver.chunks()) got.push(chunk);
    expect(got[0]!.payload.buffer).toBe(whole.buffer);
    expect(got[1]!.payload.toString()).toBe('abc');
  });

  it('send: a link drop rejects pending ready() with SEEDWIRE_DISCONNECTED, an abort with its reason', async () => {
    const s = makeSession();
    const port = new ConnectionStreamPort(() => s.session, log);
    const sender = port.openSend(1);
    const abort = new AbortController();
    const aborted = track(sender.ready(0, 1, abort.signal));
    abort.abort(new SeedwireError('SEEDWIRE_CANCELED', 'stop'));
    expect(((await aborted.result) as SeedwireError).code).toBe('SEEDWIRE_CANCELED');
    const waiting = track(sender.ready(0, 1, new AbortController().signal));
    s.drop();
    expect(((await waiting.result) as SeedwireError).code).toBe('SEEDWIRE_DISCONNECTED');
    expect(() => sender.send(0, 1, 'none', Buffer.alloc(1))).toThrow(/dropped/);
    const orphan = new ConnectionStreamPort(() => undefined, log).openSend(2);
    await expect(orphan.ready(0, 1, new AbortController().signal)).rejects.toMatchObject({ code: 'SEEDWIRE_DISCONNECTED' });
  });

  it('send: a grant that arrives before the sender opens is kept (the highest), for its stream and session only', async () => {
    const s = makeSession();
    const port = new ConnectionStreamPort(() => s.session, log);
    port.handleCredit({ t: 'credit', stream: 3, limit: 4096 });
    port.handleCredit({ t: 'credit', stream: 3, limit: 1024 }); // out of order: the higher one stays
    port.handleCredit({ t: 'credit', stream: 4, limit: 99 });
    const sender = port.openSend(3);
    expect(sender.limit).toBe(4096);
    await sender.ready(0, 4096, new AbortController().signal);
    expect(port.openSend(5).limit).toBe(0); // another stream's grant is not this one's
    sender.close();
    expect(port.openSend(3).limit).toBe(0); // the kept grant was handed to the first sender only
    port.dispose(); // the session ended: stream ids mean nothing on the next one
    expect(port.openSend(4).limit).toBe(0);
  });

  it('receive: yields decoded chunks in order, grants credit, fails after the queue on link drop', async () => {
    const s = makeSession();
    const port = new ConnectionStreamPort(() => s.session, log);
    const receiver = port.openReceive(7);
    receiver.grant(100);
    receiver.grant(50); // lower grants are ignored
    expect(s.frames).toEqual([{ t: 'credit', stream: 7, limit: 100 }]);
    port.handleBinary(encodeDataFrame({ stream: 7, offset: 0, rawLength: 3, codec: 'none', payload: Buffer.from('abc') }));
    port.handleBinary(encodeDataFrame({ stream: 8, offset: 0, rawLength: 1, codec: 'none', payload: Buffer.from('x') })); // no receiver: dropped
    port.handleBinary(encodeDataFrame({ stream: 7, offset: 3, rawLength: 2, codec: 'none', payload: Buffer.from('de') }));
    expect(() => port.handleBinary(Buffer.from('garbage'))).toThrow(SeedwireError);
    s.drop();
    const got: ReceivedChunk[] = [];
    let failure: unknown;
    try {
      for await (const chunk of receiver.chunks()) got.push(chunk);
    } catch (error) {
      failure = error;
    }
    expect(got.map((c) => [c.offset, c.payload.toString()])).toEqual([
      [0, 'abc'],
      [3, 'de'],
    ]);
    expect((failure as SeedwireError).code).toBe('SEEDWIRE_DISCONNECTED');
  });

  it('receive: close ends the iteration', async () => {
    const s = makeSession();
    const receiver = new ConnectionStreamPort(() => s.session, log).openReceive(1);
    const done = (async () => {
      const seen: number[] = [];
      for await (const chunk of receiver.chunks()) seen.push(chunk.offset);
      return seen;
    })();
    await tick();
    receiver.close();
    expect(await done).toEqual([]);
  });
});
