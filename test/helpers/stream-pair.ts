/**
 * An in-process SendPort/ReceivePort pair joined by a tiny relay, standing in for
 * agent → controller → agent in transfer tests. It carries real encoded data frames (CRC and
 * all), enforces the receiver's credit (a send past the limit fails the test), and can tamper
 * with frames or cut the link after some bytes. The transfer code is what is under test.
 */
import { decodeDataFrame, encodeDataFrame, type Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { InPlaceSend, ReceivedChunk, ReceivePort, SendPort } from '../../agent/streams/types.js';

export interface StreamPairOptions {
  /** Credit the sender starts with (as if a grant had arrived before it); default 0 (wait for the first grant). */
  initialLimit?: number;
  /** Sees every encoded frame (index from 0) and may return a replacement. */
  tamper?: (frame: Buffer, index: number) => Buffer;
  /** Drops the link instead of delivering the frame that would carry the total past this many raw bytes. */
  cutAfterBytes?: number;
}

export interface StreamPairStats {
  frames: number;
  rawBytes: number;
  /** Most raw bytes ever queued in the relay (bounded by credit). */
  maxQueuedBytes: number;
  /** First and last offsets sent. */
  firstOffset: number | null;
  endOffset: number;
}

export interface StreamPair {
  send: SendPort;
  receive: ReceivePort;
  stats: StreamPairStats;
  cut(reason?: string): void;
}

export function createStreamPair(options: StreamPairOptions = {}): StreamPair {
  const queue: Buffer[] = [];
  let queuedBytes = 0;
  let limit = options.initialLimit ?? 0;
  let failure: SeedwireError | null = null;
  let sendClosed = false;
  let receiveClosed = false;
  let wakeReceiver: (() => void) | null = null;
  const creditWaiters = new Set<() => void>();
  const stats: StreamPairStats = { frames: 0, rawBytes: 0, maxQueuedBytes: 0, firstOffset: null, endOffset: 0 };

  const wakeAll = (): void => {
    wakeReceiver?.();
    wakeReceiver = null;
    for (const wake of creditWaiters) wake();
  };
  const cut = (reason = 'link dropped'): void => {
    if (failure) return;
    failure = new SeedwireError('SEEDWIRE_DISCONNECTED', reason);
    queue.length = 0;
    queuedBytes = 0;
    wakeAll();
  };

  const send: SendPort = {
    get limit() {
      return limit;
    },
    async ready(offset, rawLength, signal) {
      for (;;) {
        signal.throwIfAborted();
        if (failure) throw failure;
        if (receiveClosed) throw new SeedwireError('SEEDWIRE_DISCONNECTED', 'receiver closed the stream');
        if (offset + rawLength <= limit) return;
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            creditWaiters.delete(wake);
            signal.removeEventListener('abort', wake);
            resolve();
          };
          creditWaiters.add(wake);
          signal.addEventListener('abort', wake, { once: true });
        });
      }
    },
    send(offset: number, rawLength: number, codec: Codec, payload: Buffer, inPlace?: InPlaceSend) {
      if (failure) throw failure;
      if (offset + rawLength > limit) throw new Error(`relay: send of [${offset}, ${offset + rawLength}) past the credit limit ${limit}`);
      let frame = encodeDataFrame({ stream: 1, offset, rawLength, codec, payload });
      // Copied above: the sender may reuse its buffer (a later turn, as after a socket write).
      if (inPlace) setImmediate(() => inPlace.released());
      if (options.tamper) frame = options.tamper(frame, stats.frames);
      if (options.cutAfterBytes !== undefined && stats.rawBytes + rawLength > options.cutAfterBytes) {
        cut(`test relay cut the link after ${stats.rawBytes} bytes`);
        return;
      }
      stats.frames += 1;
      stats.rawBytes += rawLength;
      stats.firstOffset ??= offset;
      stats.endOffset = offset + rawLength;
      queue.push(frame);
      queuedBytes += rawLength;
      stats.maxQueuedBytes = Math.max(stats.maxQueuedBytes, queuedBytes);
      wakeReceiver?.();
      wakeReceiver = null;
    },
    close() {
      sendClosed = true;
      wakeAll();
    },
  };

  const receive: ReceivePort = {
    async *chunks(): AsyncGenerator<ReceivedChunk> {
      for (;;) {
        if (failure) throw failure;
        const frame = queue.shift();
        if (frame) {
          const decoded = decodeDataFrame(frame);
          queuedBytes -= decoded.rawLength;
          yield { offset: decoded.offset, rawLength: decoded.rawLength, codec: decoded.codec, payload: decoded.payload };
          continue;
        }
        if (receiveClosed || sendClosed) return;
        await new Promise<void>((resolve) => {
          wakeReceiver = resolve;
        });
      }
    },
    grant(newLimit: number) {
      if (newLimit <= limit) return;
      limit = newLimit;
      for (const wake of creditWaiters) wake();
    },
    close() {
      receiveClosed = true;
      wakeAll();
    },
  };

  return { send, receive, stats, cut };
}

/** Flips one byte of a data frame's payload and fixes the CRC, so only the content check can notice. */
export function corruptFrame(frame: Buffer, payloadIndex: number): Buffer {
  const decoded = decodeDataFrame(frame);
  const payload = Buffer.from(decoded.payload);
  payload[payloadIndex] = (payload[payloadIndex] ?? 0) ^ 0xff;
  return encodeDataFrame({ ...decoded, payload });
}
