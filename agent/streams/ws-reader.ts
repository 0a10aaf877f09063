/**
 * A pure reader of the WebSocket frames a server sends (RFC 6455, no extensions): socket bytes in,
 * message pieces and control frames out, each piece a view of the bytes pushed (never a copy).
 *
 * Why not ws's own receiver: ws hands over whole messages, and a 1 MiB data message that came in
 * 64 KiB socket reads is copied into a fresh 1 MiB buffer first. That copy, its page faults and
 * the garbage it leaves were the largest cost of a receiving agent (docs/performance.md, "Agents'
 * per-byte work"). A receiving data connection reads its frames with this reader instead
 * (data-channel.ts); ws still does the handshake and sends.
 *
 * Refused (SEEDWIRE_BAD_FRAME, naming what was wrong): reserved bits (no extension is negotiated),
 * a masked frame (a server never masks), an unknown opcode, a fragmented or long control frame, a
 * continuation outside a message, a new message inside a fragmented one, a bad close payload.
 * A message longer than `maxMessageBytes` is SEEDWIRE_FRAME_TOO_LARGE.
 */
import { SeedwireError } from '../../shared/errors.js';

export type MessageKind = 'binary' | 'text';

export interface WsReaderHandlers {
  /** A data message begins (its first frame). */
  messageStart(kind: MessageKind): void;
  /** Payload bytes of the current message, in order; a view of the pushed bytes. */
  messagePiece(piece: Buffer): void;
  /** The current message's last frame ended. */
  messageEnd(): void;
  ping(payload: Buffer): void;
  pong(payload: Buffer): void;
  /** A close frame: its code (null when it carried none) and reason. Nothing is read after it. */
  close(code: number | null, reason: string): void;
}

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const MAX_CONTROL_PAYLOAD = 125;
/** The longest frame header: 2 bytes, a 64-bit length (a server sends no mask key). */
const MAX_HEAD_BYTES = 10;

function badFrame(what: string): SeedwireError {
  return new SeedwireError('SEEDWIRE_BAD_FRAME', `websocket: ${what}`);
}

export class WsFrameReader {
  private readonly head = Buffer.alloc(MAX_HEAD_BYTES);
  private headFill = 0;
  /** Payload bytes of the current frame still to come; -1 while reading a header. */
  private left = -1;
  private opcode = 0;
  private fin = false;
  /** A control frame's payload, gathered (at most 125 bytes). */
  private control: Buffer[] = [];
  /** Inside a data message (its first frame seen, its last not yet). */
  private inMessage = false;
  private messageBytes = 0;
  private closed = false;

  constructor(
    private readonly handlers: WsReaderHandlers,
    private readonly maxMessageBytes: number,
  ) {}

  /** Reads `bytes` (the next socket read); throws on a protocol violation (the reader is then unusable). */
  push(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length && !this.closed) {
      if (this.left < 0) {
        at = this.readHead(bytes, at);
        continue;
      }
      const n = Math.min(this.left, bytes.length - at);
      const piece = bytes.subarray(at, at + n);
      at += n;
      this.left -= n;
      if (this.opcode >= OP_CLOSE) this.control.push(piece);
      else if (n > 0) this.handlers.messagePiece(piece);
      if (this.left === 0) this.endFrame();
    }
  }

  /** Gathers header bytes from `at`; returns where reading goes on. */
  private readHead(bytes: Buffer, at: number): number {
    while (at < bytes.length) {
      this.head[this.headFill] = bytes[at] as number;
      this.headFill += 1;
      at += 1;
      const need = this.headLength();
      if (need !== null && this.headFill === need) {
        this.startFrame();
        return at;
      }
    }
    return at;
  }

  /** The header's length once its second byte is known. */
  private headLength(): number | null {
    if (this.headFill < 2) return null;
    const b1 = this.head[1] as number;
    if ((b1 & 0x80) !== 0) throw badFrame('the server sent a masked frame');
    const len7 = b1 & 0x7f;
    return len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
  }

  private startFrame(): void {
    const b0 = this.head[0] as number;
    const len7 = (this.head[1] as number) & 0x7f;
    let length: number;
    if (len7 === 126) length = this.head.readUInt16BE(2);
    else if (len7 === 127) {
      const big = this.head.readBigUInt64BE(2);
      length = big > BigInt(this.maxMessageBytes) ? Number.POSITIVE_INFINITY : Number(big);
    } else length = len7;
    this.headFill = 0;
    if ((b0 & 0x70) !== 0) throw badFrame('reserved bits set (no extension was negotiated)');
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    switch (this.opcode) {
      case OP_CLOSE:
      case OP_PING:
      case OP_PONG:
        if (!this.fin) throw badFrame(`fragmented control frame (opcode ${this.opcode})`);
        if (length > MAX_CONTROL_PAYLOAD) throw badFrame(`control frame of ${length} bytes (at most ${MAX_CONTROL_PAYLOAD})`);
        this.control = [];
        break;
      case OP_TEXT:
      case OP_BINARY:
        if (this.inMessage) throw badFrame('a new message began inside a fragmented one');
        this.inMessage = true;
        this.messageBytes = 0;
        this.handlers.messageStart(this.opcode === OP_TEXT ? 'text' : 'binary');
        break;
      case OP_CONTINUATION:
        if (!this.inMessage) throw badFrame('a continuation frame outside a message');
        break;
      default:
        throw badFrame(`unknown opcode ${this.opcode}`);
    }
    if (this.opcode < OP_CLOSE) {
      this.messageBytes += length;
      if (this.messageBytes > this.maxMessageBytes) {
        throw new SeedwireError('SEEDWIRE_FRAME_TOO_LARGE', `websocket message of more than ${this.maxMessageBytes} bytes`);
      }
    }
    this.left = length;
    if (length === 0) this.endFrame();
  }

  private endFrame(): void {
    this.left = -1;
    switch (this.opcode) {
      case OP_PING:
        this.handlers.ping(Buffer.concat(this.control));
        return;
      case OP_PONG:
        this.handlers.pong(Buffer.concat(this.control));
        return;
      case OP_CLOSE:
        this.endClose(Buffer.concat(this.control));
        return;
      default:
        if (!this.fin) return;
        this.inMessage = false;
        this.handlers.messageEnd();
    }
  }

  private endClose(payload: Buffer): void {
    if (payload.length === 1) throw badFrame('close frame with a 1-byte payload');
    this.closed = true;
    if (payload.length === 0) this.handlers.close(null, '');
    else this.handlers.close(payload.readUInt16BE(0), payload.subarray(2).toString('utf8'));
  }
}
