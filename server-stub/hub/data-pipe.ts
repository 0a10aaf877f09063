/**
 * The two data connections of one stream, joined: binary data frames from the sending agent's
 * connection go to the receiving agent's connection as the very Buffer ws handed over (only the
 * 24-byte header is read; nothing is re-encoded or copied here), credit frames go back.
 *
 * Memory is bounded twice: by credit (more than a window plus a frame held here closes the
 * sender) and by socket backpressure (the sender's socket is paused while the receiver's
 * bufferedAmount is above the high watermark, and resumed below the low one), so a slow
 * receiver stops the sender's TCP reads instead of growing a queue.
 *
 * Either connection closing ends both: the transfer attempt fails like a control-link drop and
 * the seed machine resumes it on a new stream.
 */
import type { Logger } from 'pino';
import type { RawData, WebSocket } from 'ws';
import { decodeDataHeader, decodeFrame, encodeFrame } from '../../shared/codec.js';
import type { DataRole } from '../../shared/data-link.js';
import { toSeedwireError } from '../../shared/errors.js';
import { CLOSE_CODES, type CreditFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';

export interface DataPipeOptions {
  /** @default a full window plus one message: what credit lets be in flight */
  maxHeldBytes: number;
  /** @default LIMITS.sendHighWaterBytes / sendLowWaterBytes */
  highWaterBytes: number;
  lowWaterBytes: number;
  /** Ping period; a connection that did not answer the previous ping is terminated. */
  heartbeatMs: number;
}

export const DATA_PIPE_DEFAULTS: DataPipeOptions = {
  maxHeldBytes: LIMITS.windowMaxBytes + LIMITS.maxMessageBytes,
  highWaterBytes: LIMITS.sendHighWaterBytes,
  lowWaterBytes: LIMITS.sendLowWaterBytes,
  heartbeatMs: LIMITS.heartbeatMs,
};

export interface DataPipeHooks {
  /** A credit frame the receiver sent for this stream. */
  credit(frame: CreditFrame): void;
  /** Bytes of one data frame handed to the receiver's socket. */
  relayed(bytes: number): void;
  /** The pipe closed (once), with why. */
  closed(reason: string): void;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

export class DataPipe {
  private sender: WebSocket | null = null;
  private receiver: WebSocket | null = null;
  private held = 0;
  private paused = false;
  private closed = false;
  private readonly alive = new WeakSet<WebSocket>();
  private readonly heartbeat: NodeJS.Timeout;

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

  /** Takes over an upgraded data connection for `role` (each role once: its token was one-time). */
  attach(role: DataRole, ws: WebSocket): void {
    if (this.closed || (role === 'send' ? this.sender : this.receiver) !== null) {
      ws.close(CLOSE_CODES.protocolError, `stream ${this.stream} has no place for another ${role} connection`);
      return;
    }
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    ws.on('error', (error) => this.log.debug({ stream: this.stream, role, err: error.message }, 'data connection error'));
    ws.once('close', (code, reason) => this.close(`the ${role} data connection closed (${code} ${reason.toString()})`.trim()));
    if (role === 'send') {
      this.sender = ws;
      ws.on('message', (data, isBinary) => this.fromSender(data, isBinary));
    } else {
      this.receiver = ws;
      ws.on('message', (data, isBinary) => this.fromReceiver(data, isBinary));
    }
  }

  /** Forwards a credit frame to the sender, if it is connected (the relay replays the latest grant when it connects). */
  sendCredit(frame: CreditFrame): void {
    const sender = this.sender;
    if (!sender || this.closed || sender.readyState !== sender.OPEN) return;
    sender.send(encodeFrame(frame));
  }

  /** Closes both connections (idempotent). */
  close(reason: string, code: number = CLOSE_CODES.normal): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const ws of [this.sender, this.receiver]) {
      if (ws && ws.readyState !== ws.CLOSED && ws.readyState !== ws.CLOSING) {
        ws.close(code, reason.slice(0, LIMITS.closeReasonChars));
        setTimeout(() => ws.terminate(), LIMITS.closeWaitMs).unref();
      }
    }
    this.hooks.closed(reason);
  }

  private fromSender(data: RawData, isBinary: boolean): void {
    if (!isBinary) return this.close('the sender sent a text frame on a data connection', CLOSE_CODES.protocolError);
    const buf = toBuffer(data);
    let stream: number;
    try {
      stream = decodeDataHeader(buf).stream;
    } catch (error) {
      return this.close(`bad data frame from the sender: ${toSeedwireError(error).message}`, CLOSE_CODES.protocolError);
    }
    if (stream !== this.stream) return this.close(`the sender sent a frame of stream ${stream} on stream ${this.stream}'s connection`, CLOSE_CODES.protocolError);
    const receiver = this.receiver;
    if (!receiver || receiver.readyState !== receiver.OPEN) return this.close('data arrived with no receiving connection');
    if (this.held + buf.length > this.options.maxHeldBytes) return this.close('the sender exceeded its credit window', CLOSE_CODES.protocolError);
    this.held += buf.length;
    this.hooks.relayed(buf.length);
    receiver.send(buf, { binary: true }, () => {
      this.held -= buf.length;
      if (this.paused && receiver.bufferedAmount <= this.options.lowWaterBytes) {
        this.paused = false;
        this.sender?.resume();
      }
    });
    if (!this.paused && receiver.bufferedAmount >= this.options.highWaterBytes) {
      this.paused = true;
      this.sender?.pause();
    }
  }

  private fromReceiver(data: RawData, isBinary: boolean): void {
    if (isBinary) return this.close('the receiver sent a binary frame on a data connection', CLOSE_CODES.protocolError);
    let frame;
    try {
      frame = decodeFrame(toBuffer(data).toString('utf8'));
    } catch (error) {
      return this.close(`bad frame from the receiver: ${toSeedwireError(error).message}`, CLOSE_CODES.protocolError);
    }
    if (frame.t !== 'credit' || frame.stream !== this.stream) {
      return this.close(`the receiver sent '${frame.t}' for stream ${'stream' in frame ? String(frame.stream) : '?'} on stream ${this.stream}'s connection`, CLOSE_CODES.protocolError);
    }
    this.hooks.credit(frame);
  }

  private ping(): void {
    for (const ws of [this.sender, this.receiver]) {
      if (!ws || ws.readyState !== ws.OPEN) continue;
      // A paused sender's pong waits unread in its socket: it is not silent, the receiver is slow.
      if (!this.alive.has(ws) && !(ws === this.sender && this.paused)) {
        this.log.warn({ stream: this.stream }, 'data connection silent for a heartbeat period; terminating');
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      ws.ping();
    }
  }
}
