/** The receiver's credit window and its one list of fatal failures (agent/transfer/credit.ts). */
import { describe, expect, it } from 'vitest';
import { CreditWindow, FATAL_RECEIVE_CODES, isFatalReceiveError, receiveStopError } from '../../agent/transfer/credit.js';
import { SeedwireError } from '../../shared/errors.js';
import { perLaneWindowMax } from '../../agent/transfer/receive.js';
import { LIMITS } from '../../shared/limits.js';

function grants(): { port: { grant(limit: number): void }; seen: number[] } {
  const seen: number[] = [];
  return { port: { grant: (limit) => seen.push(limit) }, seen };
}

describe('credit window', () => {
  it('grants one window past the start, then doubles each time a whole window was handled, up to the max', () => {
    const { port, seen } = grants();
    const credit = new CreditWindow(port, { initialBytes: 100, maxBytes: 400 });
    credit.open(0);
    credit.advance(50); // half a window: same size
    credit.advance(100); // a whole window handled: 200
    credit.advance(250); // 150 since growing: still 200
    credit.advance(300); // 200 since growing: 400
    credit.advance(1000); // at the max
    expect(seen).toEqual([100, 150, 300, 450, 700, 1400]);
    expect(credit.size).toBe(400);
  });

  it('counts growth from the resume point, not from 0', () => {
    const { port, seen } = grants();
    const credit = new CreditWindow(port, { initialBytes: 100, maxBytes: 400 });
    credit.open(10_000);
    credit.advance(10_050);
    expect(seen).toEqual([10_100, 10_150]);
    expect(credit.size).toBe(100);
  });

  it('defaults to the limits, and the max is never below the initial window', () => {
    const { port, seen } = grants();
    new CreditWindow(port).open(0);
    expect(seen).toEqual([LIMITS.windowInitialBytes]);
    const small = new CreditWindow(port, { initialBytes: 1000, maxBytes: 10 });
    small.open(0);
    small.advance(1000);
    expect(small.size).toBe(1000);
  });
});

describe('window per lane', () => {
  it('is the seed\'s window shared by its lanes, never below the initial window', () => {
    expect(perLaneWindowMax(1)).toBe(LIMITS.windowMaxBytes);
    expect(perLaneWindowMax(2)).toBe(LIMITS.windowMaxBytes / 2);
    expect(perLaneWindowMax(4)).toBe(Math.max(LIMITS.windowInitialBytes, LIMITS.windowMaxBytes / 4));
    expect(perLaneWindowMax(16)).toBe(LIMITS.windowInitialBytes);
  });
});

describe('fatal receive failures', () => {
  it('are the data being wrong, not an interruption', () => {
    expect([...FATAL_RECEIVE_CODES].sort()).toEqual(['SEEDWIRE_BAD_FRAME', 'SEEDWIRE_PATH_ESCAPE', 'SEEDWIRE_PROTOCOL_VERSION', 'SEEDWIRE_VERIFY_FAILED']);
    expect(isFatalReceiveError(new SeedwireError('SEEDWIRE_PATH_ESCAPE', 'x'))).toBe(true);
    expect(isFatalReceiveError(new SeedwireError('SEEDWIRE_DISCONNECTED', 'x'))).toBe(false);
    expect(isFatalReceiveError(new Error('plain'))).toBe(false);
  });

  it('an aborted receive stops as canceled unless the failure was fatal', () => {
    const aborted = AbortSignal.abort();
    const dropped = new SeedwireError('SEEDWIRE_DISCONNECTED', 'link dropped');
    const canceled = receiveStopError(dropped, aborted, 'receive canceled at stream offset 42');
    expect(canceled).toMatchObject({ code: 'SEEDWIRE_CANCELED', message: 'receive canceled at stream offset 42', cause: dropped });
    const bad = new SeedwireError('SEEDWIRE_VERIFY_FAILED', 'checksum mismatch');
    expect(receiveStopError(bad, aborted, 'x')).toBe(bad);
    expect(receiveStopError(dropped, new AbortController().signal, 'x')).toBe(dropped);
  });
});
