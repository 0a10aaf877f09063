/**
 * One data connection as a Session (what the stream ports write to): dialed in the background as
 * soon as the port opens; a credit frame sent before it is open waits (only the latest), data is
 * sent only once it is open (a sender has no credit before that anyway: credit arrives on this
 * connection). Its signal aborts when the connection closes, when the dial fails (with that
 * failure as the reason) or when the control session it belongs to ends, so a transfer on it
 * fails exactly as one on the control link does.
 */
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../shared/codec.js';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { CreditFrame, Frame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { DataDialer, DataTicketFor } from '../connection/data-dial.js';
import type { Session } from '../connection/session.js';
import type { DataReader } from './data-reader.js';
import type { BufferHold } from './receive-buffers.js';

export interface DataChannelHandlers {
  /**
   * A binary message (a data frame); throwing a SeedwireError ends the channel with it. `hold`
   * is the pooled buffer's when the data reader read it (receive-buffers.ts): one reference,
   * the handler's from now on.
   */
  binary(data: Buffer, hold?: BufferHold): void;
  credit(frame: CreditFrame): void;
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

export class DataChannel implements Session {
  readonly id: string;
  private readonly ended = new AbortController();
  private ws: WebSocket | undefined;
  private reader: DataReader | undefined;
  private pending: Frame | undefined;

  constructor(
    dial: DataDialer,
    ticket: DataTicketFor,
    control: Session | undefined,
    private readonly handlers: DataChannelHandlers,
    private readonly log: Logger,
  ) {
    this.id = `data:${ticket.stream}:${ticket.role}`;
    if (!control || control.signal.aborted) {
      this.end(new SeedwireError('SEEDWIRE_DISCONNECTED', 'link to the controller dropped'));
      return;
    }
    const onControlEnd = (): void => this.end(new SeedwireError('SEEDWIRE_DISCONNECTED', 'link to the controller dropped'));
    control.signal.addEventListener('abort', onControlEnd, { once: true });
    this.ended.signal.addEventListener('abort', () => control.signal.removeEventListener('abort', onControlEnd), { once: true });
    dial(ticket, this.ended.signal, (ws, reader) => this.adopt(ws, reader)).catch((error: unknown) => this.end(toSeedwireError(error, 'SEEDWIRE_DISCONNECTED')));
  }

  get signal(): AbortSignal {
    return this.ended.signal;
  }

  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  send(frame: Frame): boolean {
    if (this.ended.signal.aborted) return false;
    const ws = this.ws;
    if (!ws) {
      this.pending = frame;
      return true;
    }
    if (ws.readyState !== ws.OPEN) return false;
    ws.send(encodeFrame(frame));
    return true;
  }

  sendBinary(data: Buffer, onWritten?: (error?: Error) => void): boolean {
    const ws = this.ws;
    if (this.ended.signal.aborted || !ws || ws.readyState !== ws.OPEN) return false;
    ws.send(data, { binary: true }, onWritten);
    return true;
  }

  /** Closes the connection (the stream is done or abandoned); idempotent. */
  close(): void {
    this.end(new SeedwireError('SEEDWIRE_CANCELED', `${this.id} closed`));
  }

  /** With a reader (data-reader.ts), it parses what arrives; else ws does, message by message. */
  private adopt(ws: WebSocket, reader?: DataReader): void {
    if (this.ended.signal.aborted) {
      ws.close(1000, 'stream closed');
      return;
    }
    this.ws = ws;
    if (reader) {
      this.reader = reader;
      reader.takeOver({
        binary: (data, hold) => this.guard(() => this.handlers.binary(data, hold)),
        text: (data) => this.guard(() => this.text(data)),
        ping: (payload) => ws.pong(payload),
        close: (code, reason) => this.end(this.closedBy(code, reason)),
        fail: (error) => this.end(toSeedwireError(error, 'SEEDWIRE_BAD_FRAME')),
      });
    } else {
      ws.on('message', (data, isBinary) => this.guard(() => (isBinary ? this.handlers.binary(toBuffer(data)) : this.text(toBuffer(data)))));
    }
    ws.once('close', (code, reason) => this.end(this.closedBy(code, reason.toString())));
    const pending = this.pending;
    this.pending = undefined;
    if (pending) ws.send(encodeFrame(pending));
  }

  private text(data: Buffer): void {
    const frame = decodeFrame(data.toString('utf8'));
    if (frame.t === 'credit') this.handlers.credit(frame);
    else throw new SeedwireError('SEEDWIRE_BAD_FRAME', `'${frame.t}' frame on a data connection`);
  }

  /** Runs a message handler; what it throws ends the channel. */
  private guard(handle: () => void): void {
    try {
      handle();
    } catch (error) {
      this.end(toSeedwireError(error, 'SEEDWIRE_BAD_FRAME'));
    }
  }

  private closedBy(code: number, reason: string): SeedwireError {
    return new SeedwireError('SEEDWIRE_DISCONNECTED', `${this.id} closed by the controller (${code}${reason.length > 0 ? ` ${reason}` : ''})`);
  }

  private end(reason: SeedwireError): void {
    if (this.ended.signal.aborted) return;
    this.ended.abort(reason);
    this.reader?.stop();
    const ws = this.ws;
    if (ws && ws.readyState !== ws.CLOSED && ws.readyState !== ws.CLOSING) {
      ws.close(reason.code === 'SEEDWIRE_CANCELED' ? 1000 : 4000, reason.message.slice(0, LIMITS.closeReasonChars));
      setTimeout(() => ws.terminate(), LIMITS.closeWaitMs).unref();
    }
    if (reason.code !== 'SEEDWIRE_CANCELED') this.log.info({ channel: this.id, code: reason.code, reason: reason.message }, 'data connection ended');
  }
}
