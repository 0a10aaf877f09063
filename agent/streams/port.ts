/**
 * StreamPort over the agent's connection. A port belongs to the session it was opened on: when
 * that link drops, pending ready() calls and iterations reject with SEEDWIRE_DISCONNECTED (the
 * transfer code resumes from the receiver's committed offset on a new port).
 *
 * Sending waits for credit AND for the socket's send buffer: above the high watermark, bulk data
 * pauses until ws has written it down below the low watermark (woken by send callbacks, no polling).
 *
 * Credit reaches a sender only as credit frames, the first grant included. A grant may arrive
 * before the sender's port exists (the receiver grants as soon as it is ready; seed-send opens
 * its port after a snapshot is mounted, say): the latest such grant is kept, for this session
 * only, and a port opened later starts from it (see agent/transfer/credit.ts).
 */
import type { Logger } from 'pino';
import { DATA_HEADER_BYTES, decodeDataFrame, encodeDataFrame, type Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { DataTicket } from '../../shared/data-link.js';
import type { CreditFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { DataDialer } from '../connection/data-dial.js';
import type { Session } from '../connection/session.js';
import { DataChannel } from './data-channel.js';
import type { InPlaceSend, ReceivePort, ReceivedChunk, SendPort, StreamPort } from './types.js';

export interface Watermarks {
  high: number;
  low: number;
}

const DEFAULT_WATERMARKS: Watermarks = { high: LIMITS.sendHighWaterBytes, low: LIMITS.sendLowWaterBytes };
/** A receiver queue never holds more than a full window plus one message: the sender obeys credit. */
const RECEIVE_QUEUE_BYTES = LIMITS.windowMaxBytes + LIMITS.maxMessageBytes;
/** Streams whose early grant is kept at once; the oldest is forgotten beyond (one agent sends one seed at a time). */
const EARLY_GRANTS_KEPT = 64;

/**
 * Frame buffers kept for reuse by one send port: enough for what the watermarks let be in flight,
 * plus two. A fresh 1 MiB buffer per frame costs page faults on first touch that take longer than
 * the copy itself (docs/performance.md, "What each change bought").
 */
const FRAME_POOL_KEEP = Math.ceil(LIMITS.sendHighWaterBytes / LIMITS.chunkBytes) + 2;
const NO_PAYLOAD = Buffer.alloc(0);
/** A pooled frame holds a full chunk plus slack for a compressed chunk that grew; larger ones are allocated. */
const FRAME_POOL_BYTES = DATA_HEADER_BYTES + LIMITS.chunkBytes + 64 * 1024;

/** Reused frame buffers: taken for a send, given back once ws has written the frame. */
class FramePool {
  private readonly free: Buffer[] = [];
  take(length: number): Buffer | undefined {
    if (length > FRAME_POOL_BYTES) return undefined;
    return this.free.pop() ?? Buffer.allocUnsafeSlow(FRAME_POOL_BYTES);
  }
  give(buf: Buffer): void {
    if (this.free.length < FRAME_POOL_KEEP) this.free.push(buf);
  }
}

/**
 * A received payload is a view into the ws message or the reader's pooled buffer, which nothing
 * else writes to, so the queue may keep it. It is copied only when it is a small part of its
 * backing store (a small frame in a socket read buffer or a large pooled one), so what the queue
 * retains stays within twice the bytes it counts; a copied pooled buffer goes back at once.
 */
function ownChunk(chunk: ReceivedChunk): ReceivedChunk {
  const { payload } = chunk;
  if (payload.length * 2 >= payload.buffer.byteLength) return chunk;
  const copy = { ...chunk, payload: Buffer.from(payload), hold: undefined };
  chunk.hold?.release();
  return copy;
}

function disconnected(): SeedwireError {
  return new SeedwireError('SEEDWIRE_DISCONNECTED', 'link to the controller dropped');
}

/** Why a session ended: its signal's reason when that says (a data connection refused, a bad frame), else a dropped link. */
function endOf(session: Session | undefined): SeedwireError {
  const reason: unknown = session?.signal.reason;
  return reason instanceof SeedwireError ? reason : disconnected();
}

/** A set of parked waiters woken all at once; each re-checks its condition. */
class Wakeups {
  private waiters = new Set<() => void>();
  wait(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
  wakeAll(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

class ConnectionSendPort implements SendPort {
  private credit: number;
  private paused = false;
  private failure: SeedwireError | undefined;
  private readonly wakeups = new Wakeups();
  private readonly frames = new FramePool();

  constructor(
    readonly stream: number,
    initialLimit: number,
    private readonly session: Session | undefined,
    private readonly watermarks: Watermarks,
    private readonly onClose: () => void,
  ) {
    this.credit = initialLimit;
    if (!session || session.signal.aborted) this.failure = endOf(session);
    else session.signal.addEventListener('abort', () => this.fail(endOf(session)), { once: true });
  }

  get limit(): number {
    return this.credit;
  }

  grantCredit(limit: number): void {
    if (limit <= this.credit) return;
    this.credit = limit;
    this.wakeups.wakeAll();
  }

  async ready(offset: number, rawLength: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      signal.throwIfAborted();
      const session = this.session as Session;
      const buffered = session.bufferedAmount;
      if (buffered >= this.watermarks.high) this.paused = true;
      else if (buffered <= this.watermarks.low) this.paused = false;
      if (offset + rawLength <= this.credit && !this.paused) return;
      await this.wakeups.wait(signal);
    }
  }

  send(offset: number, rawLength: number, codec: Codec, payload: Buffer, inPlace?: InPlaceSend): void {
    if (this.failure) throw this.failure;
    if (inPlace) {
      this.sendInPlace(offset, rawLength, codec, payload, inPlace);
      return;
    }
    const pooled = this.frames.take(DATA_HEADER_BYTES + payload.length);
    const frame = encodeDataFrame({ stream: this.stream, offset, rawLength, codec, payload }, pooled);
    const written = (): void => {
      // ws no longer holds the frame once its write callback ran (written or failed).
      if (pooled) this.frames.give(pooled);
      this.wakeups.wakeAll();
    };
    if (!this.session?.sendBinary(frame, written)) {
      if (pooled) this.frames.give(pooled);
      throw disconnected();
    }
  }

  /**
   * The header goes into the room before the payload and the frame is the payload's own memory:
   * ws sends a data connection's frames unmasked (zero mask) and so without a copy of its own.
   */
  private sendInPlace(offset: number, rawLength: number, codec: Codec, payload: Buffer, inPlace: InPlaceSend): void {
    if (payload.byteOffset < DATA_HEADER_BYTES) throw new SeedwireError('SEEDWIRE_INTERNAL', `stream ${this.stream}: an in-place payload without room for its header`);
    const frame = Buffer.from(payload.buffer, payload.byteOffset - DATA_HEADER_BYTES, DATA_HEADER_BYTES + payload.length);
    // The header alone (an empty payload encodes the same header: the frame's length is the message's).
    encodeDataFrame({ stream: this.stream, offset, rawLength, codec, payload: NO_PAYLOAD }, frame);
    const written = (): void => {
      inPlace.released();
      this.wakeups.wakeAll();
    };
    if (!this.session?.sendBinary(frame, written)) throw disconnected();
  }

  fail(error: SeedwireError): void {
    this.failure ??= error;
    this.wakeups.wakeAll();
  }

  close(): void {
    this.fail(new SeedwireError('SEEDWIRE_CANCELED', `stream ${this.stream} closed`));
    this.onClose();
  }
}

class ConnectionReceivePort implements ReceivePort {
  private readonly queue: ReceivedChunk[] = [];
  private queuedBytes = 0;
  private granted = 0;
  private closed = false;
  private failure: SeedwireError | undefined;
  private readonly wakeups = new Wakeups();
  private readonly never = new AbortController().signal;

  constructor(
    readonly stream: number,
    private readonly session: Session | undefined,
    private readonly onClose: () => void,
  ) {
    if (!session || session.signal.aborted) this.failure = endOf(session);
    else session.signal.addEventListener('abort', () => this.fail(endOf(session)), { once: true });
  }

  push(chunk: ReceivedChunk): void {
    if (this.closed || this.failure) return;
    if (this.queuedBytes + chunk.payload.length > RECEIVE_QUEUE_BYTES) {
      this.fail(new SeedwireError('SEEDWIRE_BAD_FRAME', `stream ${this.stream}: sender exceeded its credit`));
      return;
    }
    this.queue.push(ownChunk(chunk));
    this.queuedBytes += chunk.payload.length;
    this.wakeups.wakeAll();
  }

  async *chunks(): AsyncIterable<ReceivedChunk> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        this.queuedBytes -= next.payload.length;
        yield next;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.closed) return;
      await this.wakeups.wait(this.never);
    }
  }

  grant(limit: number): void {
    if (limit <= this.granted || this.closed || this.failure) return;
    this.granted = limit;
    this.session?.send({ t: 'credit', stream: this.stream, limit });
  }

  fail(error: SeedwireError): void {
    this.failure ??= error;
    this.wakeups.wakeAll();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wakeups.wakeAll();
    this.onClose();
  }
}

export class ConnectionStreamPort implements StreamPort {
  private readonly senders = new Map<number, ConnectionSendPort>();
  private readonly receivers = new Map<number, ConnectionReceivePort>();
  /** The latest grant of each stream that had no sender when it arrived (this session's only). */
  private readonly earlyGrants = new Map<number, number>();

  constructor(
    private readonly currentSession: () => Session | undefined,
    private readonly log: Logger,
    private readonly watermarks: Watermarks = DEFAULT_WATERMARKS,
    /** Dials data connections; without it every stream takes the control link. */
    private readonly dialData?: DataDialer,
  ) {}

  openSend(stream: number, data?: DataTicket): SendPort {
    if (data && this.dialData) return this.openDataSend(stream, data, this.dialData);
    this.senders.get(stream)?.fail(new SeedwireError('SEEDWIRE_CONFLICT', `stream ${stream} was opened again`));
    const initialLimit = this.earlyGrants.get(stream) ?? 0;
    this.earlyGrants.delete(stream);
    const port: ConnectionSendPort = new ConnectionSendPort(stream, initialLimit, this.currentSession(), this.watermarks, () => {
      if (this.senders.get(stream) === port) this.senders.delete(stream);
    });
    this.senders.set(stream, port);
    return port;
  }

  openReceive(stream: number, data?: DataTicket): ReceivePort {
    if (data && this.dialData) return this.openDataReceive(stream, data, this.dialData);
    this.receivers.get(stream)?.fail(new SeedwireError('SEEDWIRE_CONFLICT', `stream ${stream} was opened again`));
    const port: ConnectionReceivePort = new ConnectionReceivePort(stream, this.currentSession(), () => {
      if (this.receivers.get(stream) === port) this.receivers.delete(stream);
    });
    this.receivers.set(stream, port);
    return port;
  }

  /**
   * A sender on its own data connection: credit arrives on it (the controller replays the latest
   * grant when it connects), so nothing is kept per session here; closing the port closes it.
   */
  private openDataSend(stream: number, data: DataTicket, dial: DataDialer): SendPort {
    // The handlers run on messages, after `port` is assigned below.
    const channel = new DataChannel(
      dial,
      { stream, role: 'send', token: data.token },
      this.currentSession(),
      {
        binary: () => {
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `stream ${stream}: data frame sent to the sending side`);
        },
        credit: (frame) => {
          if (frame.stream === stream) port.grantCredit(frame.limit);
        },
      },
      this.log,
    );
    const port = new ConnectionSendPort(stream, 0, channel, this.watermarks, () => channel.close());
    return port;
  }

  /** A receiver on its own data connection; a frame that fails to decode ends the stream with that failure (fatal for the receiver). */
  private openDataReceive(stream: number, data: DataTicket, dial: DataDialer): ReceivePort {
    // The handlers run on messages, after `port` is assigned below.
    const channel = new DataChannel(
      dial,
      { stream, role: 'receive', token: data.token },
      this.currentSession(),
      {
        binary: (buf, hold) => {
          const frame = decodeDataFrame(buf);
          if (frame.stream !== stream) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `stream ${stream}: a frame of stream ${frame.stream} on its data connection`);
          port.push({ offset: frame.offset, rawLength: frame.rawLength, codec: frame.codec, payload: frame.payload, hold });
        },
        credit: () => {
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `stream ${stream}: credit sent to the receiving side`);
        },
      },
      this.log,
    );
    const port = new ConnectionReceivePort(stream, channel, () => channel.close());
    return port;
  }

  /** A credit frame from the controller (the receiver's grant, relayed). */
  handleCredit(frame: CreditFrame): void {
    const port = this.senders.get(frame.stream);
    if (port) {
      port.grantCredit(frame.limit);
      return;
    }
    // Kept for a sender that opens later; grants only grow, so the highest is the one to keep.
    const kept = this.earlyGrants.get(frame.stream) ?? 0;
    this.earlyGrants.delete(frame.stream);
    this.earlyGrants.set(frame.stream, Math.max(kept, frame.limit));
    if (this.earlyGrants.size > EARLY_GRANTS_KEPT) this.earlyGrants.delete(this.earlyGrants.keys().next().value as number);
    this.log.debug({ stream: frame.stream, limit: frame.limit }, 'credit for a stream with no sender yet; kept');
  }

  /** A binary frame: decode (throws SEEDWIRE_BAD_FRAME / VERIFY_FAILED) and route it. */
  handleBinary(data: Buffer): void {
    const frame = decodeDataFrame(data);
    const port = this.receivers.get(frame.stream);
    if (!port) {
      this.log.debug({ stream: frame.stream, offset: frame.offset }, 'data for a stream with no receiver; dropped');
      return;
    }
    port.push({ offset: frame.offset, rawLength: frame.rawLength, codec: frame.codec, payload: frame.payload });
  }

  /** The link dropped: every open port fails (their sessions' signals did that already). */
  dispose(): void {
    for (const port of this.senders.values()) port.fail(disconnected());
    for (const port of this.receivers.values()) port.fail(disconnected());
    this.senders.clear();
    this.receivers.clear();
    // Stream ids are the controller's: a grant kept for this session means nothing on the next.
    this.earlyGrants.clear();
  }
}
