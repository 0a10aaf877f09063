/**
 * The two data connections of one stream, joined by a streaming relay: the sending agent's
 * WebSocket frames go to the receiving agent as they arrive, each client frame's header rewritten
 * into a server frame's (unmasked) and its payload passed through as the very slices the socket
 * delivered, never reassembled into whole messages or copied (docs/performance.md, "Streaming
 * relay: what it bought"). Credit frames go back the other way.
 *
 * Checks, per data message: it is binary, its first 24 bytes are a data header (shared/codec.ts)
 * of this stream — held back (24 bytes copied) until they are whole and checked, so a bad header
 * never reaches the receiver — and it fits the message size limit. A frame split before its
 * header was whole is re-framed around the header; every other frame keeps its length and FIN.
 *
 * Memory is bounded twice: by credit (a frame that would take what is queued for the receiver past
 * a window plus a message closes the stream) and by socket backpressure (the sender's socket is
 * paused while the receiver's queue is above the high watermark, and resumed below the low one),
 * so a slow receiver stops the sender's TCP reads instead of growing a queue.
 *
 * Either connection closing ends both: the transfer attempt fails like a control-link drop and
 * the seed machine resumes it on a new stream.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { DATA_HEADER_BYTES, decodeDataHeader, decodeFrame, encodeFrame } from '../../shared/codec.js';
import type { DataRole } from '../../shared/data-link.js';
import { toSeedwireError } from '../../shared/errors.js';
import { CLOSE_CODES, type CreditFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { DataPeer, type DataPeerHandler } from './data-peer.js';
import { CLOSE_ABNORMAL, OPCODES, type FrameStart } from '../../shared/ws-wire.js';

/** Corked writes to the receiver are flushed once this much waits (a data frame's worth), without waiting for the loop turn's end. */
const FLUSH_BYTES = LIMITS.chunkBytes;

export interface DataPipeOptions {
  /** @default a full window plus one message: what credit lets be in flight */
  maxHeldBytes: number;
  /** @default LIMITS.sendHighWaterBytes / sendLowWaterBytes */
  highWaterBytes: number;
  lowWaterBytes: number;
  /** Ping period; a connection that did not answer the previous ping is terminated. */
  heartbeatMs: number;
  /** @default LIMITS.maxMessageBytes: the largest message either agent may send (the agents' own limit) */
  maxMessageBytes: number;
  /** @default 4 KiB: the largest text message (a credit frame is under 100 bytes) */
  maxTextBytes: number;
}

export const DATA_PIPE_DEFAULTS: DataPipeOptions = {
  maxHeldBytes: LIMITS.windowMaxBytes + LIMITS.maxMessageBytes,
  highWaterBytes: LIMITS.sendHighWaterBytes,
  lowWaterBytes: LIMITS.sendLowWaterBytes,
  heartbeatMs: LIMITS.heartbeatMs,
  maxMessageBytes: LIMITS.maxMessageBytes,
  maxTextBytes: 4096,
};

export interface DataPipeHooks {
  /** A credit frame the receiver sent for this stream. */
  credit(frame: CreditFrame): void;
  /** Bytes of one data message (header included) handed to the receiver's socket, once its last byte was. */
  relayed(bytes: number): void;
  /** The pipe closed (once), with why. */
  closed(reason: string): void;
}

/** Where the sender's current data message stands. */
interface SenderMessage {
  /** Bytes of its data header seen so far (up to 24); the header is checked when whole. */
  headerGot: number;
  /** Payload bytes of all its frames so far. */
  bytes: number;
  /** The current frame's header bytes that came in earlier frames (re-sent in this frame). */
  carried: number;
  /** Whether the current frame is being forwarded (its header written to the receiver). */
  forwarding: boolean;
  /** The current frame. */
  frame: FrameStart;
}

export class DataPipe {
  private sender: DataPeer | null = null;
  private receiver: DataPeer | null = null;
  private paused = false;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly dataHeader = Buffer.alloc(DATA_HEADER_BYTES);
  private readonly message: SenderMessage = { headerGot: 0, bytes: 0, carried: 0, forwarding: false, frame: { opcode: OPCODES.binary, fin: true, length: 0 } };
  private text: Buffer[] = [];
  private textBytes = 0;
  /** Whether writes to the receiver are corked until flushReceiver runs, and up to which queue length. */
  private corked = false;
  private flushAt = 0;
  private readonly flushReceiver = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.receiver?.socket.uncork();
  };
  /** Called as each piece queued for the receiver is flushed: resumes a paused sender below the low watermark. */
  private readonly onReceiverWritten = (): void => {
    if (this.paused && this.receiver && this.receiver.writableLength <= this.options.lowWaterBytes) this.resumeSender();
  };

  constructor(
    readonly stream: number,
    private readonly hooks: DataPipeHooks,
    private readonly log: Logger,
    private readonly options: DataPipeOptions = DATA_PIPE_DEFAULTS,
  ) {
    this.heartbeat = setInterval(() => this.ping(), options.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Whether both sides are connected. */
  get joined(): boolean {
    return this.sender !== null && this.receiver !== null && !this.closed;
  }

  /**
   * Takes over an upgraded data connection for `role` (each role once: its token was one-time):
   * the socket after the 101 answer, and the bytes that came with the request.
   */
  attach(role: DataRole, socket: Duplex, head: Buffer): void {
    if (this.closed || (role === 'send' ? this.sender : this.receiver) !== null) {
      closeDataSocket(socket, role, CLOSE_CODES.protocolError, `stream ${this.stream} has no place for another ${role} connection`, this.log);
      return;
    }
    const peerOptions = { maxMessageBytes: this.options.maxMessageBytes, closeWaitMs: LIMITS.closeWaitMs };
    const peer = new DataPeer(socket, role, role === 'send' ? this.senderHandler() : this.receiverHandler(), this.log, peerOptions);
    if (role === 'send') this.sender = peer;
    else this.receiver = peer;
    peer.start(head);
  }

  /** Forwards a credit frame to the sender, if it is connected (the relay replays the latest grant when it connects). */
  sendCredit(frame: CreditFrame): void {
    if (this.closed) return;
    this.sender?.sendText(encodeFrame(frame));
  }

  /** Closes both connections (idempotent). */
  close(reason: string, code: number = CLOSE_CODES.normal): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    const text = reason.slice(0, LIMITS.closeReasonChars);
    this.sender?.close(code, text);
    this.receiver?.close(code, text);
    this.hooks.closed(reason);
  }

  private senderHandler(): DataPeerHandler {
    return {
      // Writes to the receiver wait, corked, until the event loop has read what the sender's
      // socket had (libuv reads a readable socket up to 32 times per turn) or a chunk's worth
      // is queued: one writev per turn instead of one per 64 KiB read.
      chunkStart: () => {
        const receiver = this.receiver;
        if (this.corked || !receiver) return;
        this.corked = true;
        this.flushAt = receiver.writableLength + FLUSH_BYTES;
        receiver.socket.cork();
        setImmediate(this.flushReceiver);
      },
      chunkEnd: () => {
        const receiver = this.receiver;
        if (!receiver) return;
        if (receiver.writableLength >= this.flushAt) this.flushReceiver();
        if (!this.paused && !this.closed && receiver.writableLength >= this.options.highWaterBytes) {
          this.paused = true;
          this.sender?.socket.pause();
        }
      },
      frameStart: (frame) => this.senderFrameStart(frame),
      payload: (slice) => this.senderPayload(slice),
      frameEnd: (frame) => this.senderFrameEnd(frame),
      violation: (message) => this.close(`bad frame from the sender: ${message}`, CLOSE_CODES.protocolError),
      ended: (code, reason) => this.peerEnded('send', code, reason),
    };
  }

  private receiverHandler(): DataPeerHandler {
    return {
      // Several grants read at once leave in one write.
      chunkStart: () => this.sender?.socket.cork(),
      chunkEnd: () => this.sender?.socket.uncork(),
      frameStart: (frame) => {
        if (frame.opcode === OPCODES.binary) return this.close('the receiver sent a binary frame on a data connection', CLOSE_CODES.protocolError);
        if (frame.opcode === OPCODES.text) {
          this.text = [];
          this.textBytes = 0;
        }
        this.textBytes += frame.length;
        if (this.textBytes > this.options.maxTextBytes) this.close(`the receiver sent a text message of more than ${this.options.maxTextBytes} bytes`, CLOSE_CODES.protocolError);
      },
      // A view of the socket's chunk, kept only until the message ends.
      payload: (slice) => this.text.push(slice),
      frameEnd: (frame) => {
        if (frame.fin) this.fromReceiver(Buffer.concat(this.text, this.textBytes).toString('utf8'));
      },
      violation: (message) => this.close(`bad frame from the receiver: ${message}`, CLOSE_CODES.protocolError),
      ended: (code, reason) => this.peerEnded('receive', code, reason),
    };
  }

  private senderFrameStart(frame: FrameStart): void {
    if (frame.opcode === OPCODES.text) return this.close('the sender sent a text frame on a data connection', CLOSE_CODES.protocolError);
    const message = this.message;
    if (frame.opcode === OPCODES.binary) {
      message.headerGot = 0;
      message.bytes = 0;
    }
    message.bytes += frame.length;
    message.carried = message.headerGot;
    message.forwarding = false;
    message.frame = frame;
    const receiver = this.receiver;
    if (!receiver?.open) return this.close('data arrived with no receiving connection');
    if (receiver.writableLength + frame.length > this.options.maxHeldBytes) return this.close('the sender exceeded its credit window', CLOSE_CODES.protocolError);
    if (message.headerGot === DATA_HEADER_BYTES) {
      receiver.startFrame(OPCODES.continuation, frame.fin, frame.length);
      message.forwarding = true;
    }
  }

  private senderPayload(slice: Buffer): void {
    const message = this.message;
    const receiver = this.receiver;
    if (!receiver) return;
    if (message.forwarding) {
      receiver.writePayload(slice, this.onReceiverWritten);
      return;
    }
    const take = Math.min(DATA_HEADER_BYTES - message.headerGot, slice.length);
    slice.copy(this.dataHeader, message.headerGot, 0, take);
    message.headerGot += take;
    if (message.headerGot < DATA_HEADER_BYTES) return;
    let stream: number;
    try {
      stream = decodeDataHeader(this.dataHeader).stream;
    } catch (error) {
      return this.close(`bad data frame from the sender: ${toSeedwireError(error).message}`, CLOSE_CODES.protocolError);
    }
    if (stream !== this.stream) return this.close(`the sender sent a frame of stream ${stream} on stream ${this.stream}'s connection`, CLOSE_CODES.protocolError);
    // The header is whole and good: this frame goes out with the header bytes of earlier frames in front.
    receiver.startFrame(OPCODES.binary, message.frame.fin, message.carried + message.frame.length);
    receiver.writePayload(Buffer.from(this.dataHeader), this.onReceiverWritten);
    if (take < slice.length) receiver.writePayload(slice.subarray(take), this.onReceiverWritten);
    message.forwarding = true;
  }

  private senderFrameEnd(frame: FrameStart): void {
    const message = this.message;
    if (!message.forwarding && frame.fin) {
      return this.close(`bad data frame from the sender: a message of ${message.bytes} bytes is shorter than its ${DATA_HEADER_BYTES}-byte header`, CLOSE_CODES.protocolError);
    }
    message.forwarding = false;
    if (frame.fin) this.hooks.relayed(message.bytes);
  }

  private fromReceiver(text: string): void {
    let frame;
    try {
      frame = decodeFrame(text);
    } catch (error) {
      return this.close(`bad frame from the receiver: ${toSeedwireError(error).message}`, CLOSE_CODES.protocolError);
    }
    if (frame.t !== 'credit' || frame.stream !== this.stream) {
      return this.close(`the receiver sent '${frame.t}' for stream ${'stream' in frame ? String(frame.stream) : '?'} on stream ${this.stream}'s connection`, CLOSE_CODES.protocolError);
    }
    this.hooks.credit(frame);
  }

  private peerEnded(role: DataRole, code: number, reason: string): void {
    this.close(`the ${role} data connection closed (${code === CLOSE_ABNORMAL || reason.length === 0 ? String(code) : `${code} ${reason}`})`);
  }

  private resumeSender(): void {
    this.paused = false;
    this.sender?.socket.resume();
  }

  private ping(): void {
    for (const peer of [this.sender, this.receiver]) {
      if (!peer?.open) continue;
      // A paused sender's pong waits unread in its socket: it is not silent, the receiver is slow.
      if (peer.silent && !(peer === this.sender && this.paused)) {
        this.log.warn({ stream: this.stream, role: peer.role }, 'data connection silent for a heartbeat period; terminating');
        peer.terminate();
        continue;
      }
      peer.ping();
    }
  }
}

/** Closes a data connection the relay has no place for (its stream ended, or its role is taken). */
export function closeDataSocket(socket: Duplex, role: DataRole, code: number, reason: string, log: Logger): void {
  const ignore = (): void => {};
  const peer = new DataPeer(
    socket,
    role,
    { chunkStart: ignore, chunkEnd: ignore, frameStart: ignore, payload: ignore, frameEnd: ignore, violation: ignore, ended: ignore },
    log,
    { maxMessageBytes: DATA_PIPE_DEFAULTS.maxMessageBytes, closeWaitMs: LIMITS.closeWaitMs },
  );
  peer.close(code, reason.slice(0, LIMITS.closeReasonChars));
}
