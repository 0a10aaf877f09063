/**
 * Output the controller acknowledges (docs/protocol.md, "Output acknowledgements"): the agent's
 * OutputChannel keeps what it sent until an ack covers it and sends it again after a reconnect,
 * under the same seq; the controller keeps a frame once by seq. A property test runs the channel
 * against a model controller over a link that drops what is in flight at random moments.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OutputChannel } from '../../agent/dispatch/output.js';
import type { Frame, OutputFrame } from '../../shared/frames.js';

const outputs = (frames: Frame[]): OutputFrame[] => frames.filter((f): f is OutputFrame => f.t === 'output');

describe('output channel with acknowledgements', () => {
  it('keeps sent frames until acked and sends them again, same seq, after a welcome', () => {
    const sent: Frame[] = [];
    const send = (frame: Frame): boolean => (sent.push(frame), true);
    const channel = new OutputChannel('c1', 1024, 4, () => true);
    channel.write('stdout', 'abcdefgh', send); // seq 0, 1
    channel.write('stderr', 'ij', send); // seq 2
    expect(channel.unacknowledged).toBe(10);
    channel.ack(0);
    expect(channel.unacknowledged).toBe(6);
    expect(channel.settled).toBe(false);
    sent.length = 0;
    expect(channel.replay(send)).toBe(true);
    expect(outputs(sent).map((f) => [f.seq, f.stream, f.data])).toEqual([
      [1, 'stdout', 'efgh'],
      [2, 'stderr', 'ij'],
    ]);
    channel.ack(2);
    expect(channel.settled).toBe(true);
    channel.write('stdout', 'k', send);
    expect(outputs(sent).at(-1)).toMatchObject({ seq: 3, data: 'k' });
  });

  it('replays acknowledged-nothing output before what was buffered while the link was down', () => {
    const sent: Frame[] = [];
    let up = true;
    const send = (frame: Frame): boolean => (up ? (sent.push(frame), true) : false);
    const channel = new OutputChannel('c1', 1024, 4, () => true);
    channel.write('stdout', 'one.', send); // seq 0, into a socket that then dies
    up = false;
    channel.write('stdout', 'two.', send); // buffered
    expect(channel.buffered).toBe(4);
    up = true;
    sent.length = 0;
    expect(channel.replay(send)).toBe(true);
    expect(outputs(sent).map((f) => [f.seq, f.data])).toEqual([
      [0, 'one.'],
      [1, 'two.'],
    ]);
  });

  it('keeps nothing for a controller that does not acknowledge output', () => {
    const sent: Frame[] = [];
    const send = (frame: Frame): boolean => (sent.push(frame), true);
    let acks = true;
    const channel = new OutputChannel('c1', 1024, 4, () => acks);
    channel.write('stdout', 'abcd', send);
    expect(channel.unacknowledged).toBe(4);
    acks = false; // the next welcome came from an older controller
    sent.length = 0;
    expect(channel.replay(send)).toBe(true);
    expect(sent).toEqual([]);
    expect(channel.settled).toBe(true);
    channel.write('stdout', 'efgh', send);
    expect(channel.unacknowledged).toBe(0);
  });

  it('stays within its bound: the oldest sent frames are forgotten first, then unsent output becomes a gap', () => {
    const sent: Frame[] = [];
    let up = true;
    const send = (frame: Frame): boolean => (up ? (sent.push(frame), true) : false);
    const channel = new OutputChannel('c1', 8, 4, () => true);
    channel.write('stdout', 'aaaabbbbcccc', send); // seq 0-2 sent; 'aaaa' forgotten
    expect(channel.unacknowledged).toBe(8);
    up = false;
    channel.write('stdout', 'ddddeeeeffff', send);
    expect(channel.buffered + channel.unacknowledged).toBeLessThanOrEqual(8);
    expect(channel.unacknowledged).toBe(0);
    up = true;
    sent.length = 0;
    expect(channel.replay(send)).toBe(true);
    const frames = outputs(sent);
    // Only unsent output is counted as a gap: 'dddd' never left; the sent frames' fate is the controller's to see.
    expect(frames.map((f) => [f.seq, f.data, f.gap])).toEqual([
      [3, 'eeee', 4],
      [4, 'ffff', undefined],
    ]);
  });

  it('property: over a link that drops what is in flight, the controller stores every byte once, in order', () => {
    type Step = { kind: 'write'; text: string } | { kind: 'deliver' } | { kind: 'ack' } | { kind: 'drop' } | { kind: 'reconnect' };
    const step = fc.oneof(
      fc.record({ kind: fc.constant('write' as const), text: fc.string({ minLength: 1, maxLength: 12 }) }),
      fc.constant({ kind: 'deliver' as const }),
      fc.constant({ kind: 'ack' as const }),
      fc.constant({ kind: 'drop' as const }),
      fc.constant({ kind: 'reconnect' as const }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps: Step[]) => {
        let up = true;
        let inFlight: OutputFrame[] = [];
        let storedSeq = -1;
        let stored = '';
        let written = '';
        const send = (frame: Frame): boolean => {
          if (!up) return false;
          if (frame.t === 'output') inFlight.push(frame);
          return true;
        };
        const deliver = (): void => {
          for (const frame of inFlight) {
            if (frame.seq <= storedSeq) continue;
            expect(frame.seq).toBe(storedSeq + 1); // no hole: nothing was forgotten within the bound
            expect(frame.gap).toBeUndefined();
            stored += frame.data;
            storedSeq = frame.seq;
          }
          inFlight = [];
        };
        const channel = new OutputChannel('c1', 1 << 20, 5, () => true);
        for (const s of steps) {
          if (s.kind === 'write') {
            written += s.text;
            channel.write('stdout', s.text, send);
          } else if (s.kind === 'deliver') deliver();
          else if (s.kind === 'ack') {
            if (up && storedSeq >= 0) channel.ack(storedSeq);
          } else if (s.kind === 'drop') {
            up = false; // the socket dies with what it held
            inFlight = [];
          } else {
            up = true;
            channel.replay(send);
          }
        }
        up = true;
        channel.replay(send);
        deliver();
        expect(stored).toBe(written);
      }),
      { seed: 20261202, numRuns: 500 },
    );
  });
});
