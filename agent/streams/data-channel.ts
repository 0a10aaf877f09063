/**
 * One data connection as a Session (what the stream ports write to): dialed in the background as
 * soon as the port opens; a credit frame sent before it is open waits (only the latest), data is
 * sent only once it is open (a sender has no credit before that anyway: credit arrives on this
 * connection). Its signal aborts when the connection closes, when the dial fails (with that
 * failure as the reason) or when the control session it belongs to ends, so a transfer on it
 * fails exactly as one on the control link does.
 *
 * A receiving channel reads its frames itself (ws-reader.ts) once ws has done the handshake:
 * binary messages reach the port as pieces of the socket's reads, not as whole messages ws
 * would first copy together (docs/performance.md, "Agents' per-byte work"). ws still sends
 * (credit frames, pongs, the close frame).
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../shared/codec.js';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { CreditFrame, Frame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { DataDialer, DataTicketFor } from '../connection/data-dial.js';
import type { Session } from '../connection/session.js';
import { WsFrameReader } from './ws-reader.js';

export interface DataChannelHandlers {
  /** A binary message (a data frame); throwing a SeedwireError ends the channel with it. */
  binary(data: Buffer): void;
  credit(frame: CreditFrame): void;
  /**
   * With these, binary messages arrive as pieces (views of socket reads) instead of through
   * `binary`; throwing a SeedwireError ends the channel with it.
   */
  pieces?: BinaryPieceHandlers;
}

export interface BinaryPieceHandlers {
  start(): void;
  piece(bytes: Buffer): void;
  end(): void;
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

export class DataChannel implements Session {
  readonly id: string;
  private readonly ended = new AbortController();
  private ws: WebSocket | undefined;
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
    dial(ticket, this.ended.signal, (ws, socket) => this.adopt(ws, socket)).catch((error: unknown) => this.end(toSeedwireError(error, 'SEEDWIRE_DISCONNECTED')));
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

  private adopt(ws: WebSocket, socket: Socket | undefined): void {
    if (this.ended.signal.aborted) {
      ws.close(1000, 'stream closed');
      return;
    }
    this.ws = ws;
    const pieces = this.handlers.pieces;
    if (pieces && socket) this.readFrames(ws, socket, pieces);
    else {
      ws.on('message', (data, isBinary) => {
        try {
          if (isBinary) this.handlers.binary(toBuffer(data));
          else this.handleText(toBuffer(data));
        } catch (error) {
          this.end(toSeedwireError(error, 'SEEDWIRE_BAD_FRAME'));
        }
      });
    }
    ws.once('close', (code, reason) => {
      this.end(new SeedwireError('SEEDWIRE_DISCONNECTED', `${this.id} closed by the controller (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`));
    });
    const pending = this.pending;
    this.pending = undefined;
    if (pending) ws.send(encodeFrame(pending));
  }

  private handleText(data: Buffer): void {
    const frame = decodeFrame(data.toString('utf8'));
    if (frame.t === 'credit') this.handlers.credit(frame);
    else throw new SeedwireError('SEEDWIRE_BAD_FRAME', `'${frame.t}' frame on a data connection`);
  }

  /**
   * Takes the socket's reads from ws: ws's listener is replaced by the frame reader. This runs in
   * ws's 'open' event, before any byte after the handshake is emitted (ws puts what came with
   * the handshake back into the socket, which emits it on a later tick), so nothing is lost.
   */
  private readFrames(ws: WebSocket, socket: Socket, pieces: BinaryPieceHandlers): void {
    let text: Buffer[] | null = null;
    const reader = new WsFrameReader(
      {
        messageStart: (kind) => {
          text = kind === 'text' ? [] : null;
          if (!text) pieces.start();
        },
        messagePiece: (piece) => {
          if (text) text.push(piece);
          else pieces.piece(piece);
        },
        messageEnd: () => {
          const done = text;
          text = null;
          if (done) this.handleText(Buffer.concat(done));
          else pieces.end();
        },
        ping: (payload) => ws.pong(payload),
        pong: () => undefined,
        close: (code, reason) => {
          this.end(new SeedwireError('SEEDWIRE_DISCONNECTED', `${this.id} closed by the controller (${code ?? 1005}${reason.length > 0 ? ` ${reason}` : ''})`));
        },
      },
      LIMITS.maxMessageBytes,
    );
    for (const listener of socket.listeners('data')) socket.removeListener('data', listener as (chunk: Buffer) => void);
    socket.on('data', (chunk: Buffer) => {
      if (this.ended.signal.aborted) return;
      try {
        reader.push(chunk);
      } catch (error) {
        this.end(toSeedwireError(error, 'SEEDWIRE_BAD_FRAME'));
      }
    });
  }

  private end(reason: SeedwireError): void {
    if (this.ended.signal.aborted) return;
    this.ended.abort(reason);
    const ws = this.ws;
    if (ws && ws.readyState !== ws.CLOSED && ws.readyState !== ws.CLOSING) {
      ws.close(reason.code === 'SEEDWIRE_CANCELED' ? 1000 : 4000, reason.message.slice(0, LIMITS.closeReasonChars));
      setTimeout(() => ws.terminate(), LIMITS.closeWaitMs).unref();
    }
    if (reason.code !== 'SEEDWIRE_CANCELED') this.log.info({ channel: this.id, code: reason.code, reason: reason.message }, 'data connection ended');
  }
}
