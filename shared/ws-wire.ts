/**
 * The WebSocket framing (RFC 6455, section 5) of a data connection, as the controller's streaming
 * relay and the agents' data reader (agent/streams/data-reader.ts) see it: a parser driven by
 * bytes, emitting each data frame's payload as slices of the very chunks it was given (never
 * reassembled, never copied), or told that the caller read payload bytes straight into place;
 * and the encoders of the server frames the relay writes. Pure: tested on literal bytes.
 *
 * Clients must mask (section 5.1), servers must not. Agents use an all-zero mask on data
 * connections, which makes unmasking a no-op; any other mask is undone in place, in the chunk the
 * socket handed over (the relay owns it), so a client that masks for real still works, at the
 * cost of a pass over its bytes.
 */
import { SeedwireError } from './errors.js';

export const OPCODES = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;
export type DataOpcode = typeof OPCODES.continuation | typeof OPCODES.text | typeof OPCODES.binary;
export type ControlOpcode = typeof OPCODES.close | typeof OPCODES.ping | typeof OPCODES.pong;

/** A control frame's payload may not exceed this (section 5.5). */
export const MAX_CONTROL_PAYLOAD = 125;
/** Close code for "closed without a close frame" (section 7.1.5); never sent on the wire. */
export const CLOSE_ABNORMAL = 1006;

export interface FrameStart {
  opcode: DataOpcode;
  fin: boolean;
  /** Payload bytes of this frame. */
  length: number;
}

/** What the parser reports, synchronously, in wire order. */
export interface FrameSink {
  /** A text, binary or continuation frame begins; its payload follows in `dataPayload` slices. */
  dataFrameStart(frame: FrameStart): void;
  /** Unmasked payload bytes of the current data frame: a view into the pushed chunk. */
  dataPayload(slice: Buffer): void;
  /** The current data frame's last payload byte was delivered (also for an empty frame). */
  dataFrameEnd(frame: FrameStart): void;
  /** A whole control frame (close, ping, pong); its payload is a copy of at most 125 bytes. */
  control(opcode: ControlOpcode, payload: Buffer): void;
}

export interface FrameParserOptions {
  /** Largest payload of one message (all its fragments together). */
  maxMessageBytes: number;
  /**
   * Whose frames are parsed: a client's must be masked, a server's must not be (section 5.1).
   * @default 'client'
   */
  from?: 'client' | 'server';
}

/** Reading a frame header, a data frame's payload (streamed), or a control frame's payload (collected). */
type State = 'header' | 'payload' | 'control';

function violation(message: string): SeedwireError {
  return new SeedwireError('SEEDWIRE_BAD_FRAME', message);
}

/**
 * Reads frames from a byte stream: `push` each chunk as it arrives. A protocol violation
 * throws a SeedwireError (SEEDWIRE_BAD_FRAME) naming it; after that, or after `halt()`, the parser
 * ignores everything. Fragmentation rules are checked here (a continuation needs an open message,
 * a new message may not start inside one, control frames are whole and short), so a sink sees
 * only well-formed sequences.
 */
export class FrameParser {
  private state: State = 'header';
  private readonly header = Buffer.alloc(14);
  private headerGot = 0;
  private readonly mask = Buffer.alloc(4);
  private masked = false;
  /** Bytes of the current frame's payload already delivered (for the mask's phase). */
  private delivered = 0;
  private frame: FrameStart = { opcode: OPCODES.binary, fin: true, length: 0 };
  private controlOpcode: ControlOpcode = OPCODES.ping;
  private control: Buffer = Buffer.alloc(0);
  /** The opcode of the fragmented message in progress, or null between messages. */
  private openMessage: DataOpcode | null = null;
  private messageBytes = 0;
  private halted = false;

  private readonly fromServer: boolean;

  constructor(
    private readonly sink: FrameSink,
    private readonly options: FrameParserOptions,
  ) {
    this.fromServer = options.from === 'server';
  }

  /** Stops parsing for good (the connection is closing); later pushes are ignored. */
  halt(): void {
    this.halted = true;
  }

  /** Whether a data frame's payload is being delivered (a frame was started and not ended). */
  get midFrame(): boolean {
    return this.state === 'payload';
  }

  /** Payload bytes of the current data frame still to come (0 when not inside one). */
  get payloadLeft(): number {
    return this.state === 'payload' ? this.frame.length - this.delivered : 0;
  }

  /**
   * The caller read `n` bytes of the current data frame's payload straight into a place of its
   * own (no `dataPayload` call follows for them). Only for unmasked frames: a masked payload must
   * go through `push`, which unmasks it.
   */
  payloadDelivered(n: number): void {
    if (this.halted) return;
    if (this.state !== 'payload' || !Number.isInteger(n) || n < 0 || n > this.frame.length - this.delivered || this.masked) {
      this.halted = true;
      throw new SeedwireError('SEEDWIRE_INTERNAL', `${n} payload bytes delivered outside an unmasked frame's payload`);
    }
    this.delivered += n;
    if (this.delivered === this.frame.length) this.endDataFrame();
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (!this.halted && pos < chunk.length) {
      if (this.state === 'header') {
        pos = this.readHeader(chunk, pos);
      } else if (this.state === 'payload') {
        const take = Math.min(this.frame.length - this.delivered, chunk.length - pos);
        const slice = chunk.subarray(pos, pos + take);
        this.unmask(slice);
        pos += take;
        this.delivered += take;
        this.sink.dataPayload(slice);
        if (this.delivered === this.frame.length) this.endDataFrame();
      } else {
        const take = Math.min(this.control.length - this.delivered, chunk.length - pos);
        chunk.copy(this.control, this.delivered, pos, pos + take);
        pos += take;
        this.delivered += take;
        if (this.delivered === this.control.length) this.endControlFrame();
      }
    }
  }

  private fail(message: string): never {
    this.halted = true;
    throw violation(message);
  }

  /** Copies header bytes until the header is whole, then starts the frame; returns the new position. */
  private readHeader(chunk: Buffer, pos: number): number {
    let at = pos;
    const need = (): number => {
      if (this.headerGot < 2) return 2;
      const len7 = (this.header[1] ?? 0) & 0x7f;
      return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((this.header[1] ?? 0) & 0x80 ? 4 : 0);
    };
    while (this.headerGot < need() && at < chunk.length) {
      const take = Math.min(need() - this.headerGot, chunk.length - at);
      chunk.copy(this.header, this.headerGot, at, at + take);
      this.headerGot += take;
      at += take;
    }
    if (this.headerGot === need()) this.startFrame();
    return at;
  }

  private startFrame(): void {
    const b0 = this.header[0] ?? 0;
    const b1 = this.header[1] ?? 0;
    this.headerGot = 0;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) this.fail('a frame with RSV bits set (no extension was negotiated)');
    const maskBit = (b1 & 0x80) !== 0;
    if (!this.fromServer && !maskBit) this.fail('an unmasked frame (a client must mask its frames)');
    if (this.fromServer && maskBit) this.fail('a masked frame (a server must not mask its frames)');
    const len7 = b1 & 0x7f;
    let length: number;
    let maskAt: number;
    if (len7 === 126) {
      length = this.header.readUInt16BE(2);
      maskAt = 4;
    } else if (len7 === 127) {
      const high = this.header.readUInt32BE(2);
      // A 63-bit length above what any message may carry is refused before it is read.
      if (high > 0x1fffff) this.fail('a frame length beyond 2^53 bytes');
      length = high * 0x1_0000_0000 + this.header.readUInt32BE(6);
      maskAt = 10;
    } else {
      length = len7;
      maskAt = 2;
    }
    if (maskBit) this.header.copy(this.mask, 0, maskAt, maskAt + 4);
    else this.mask.fill(0);
    this.masked = this.mask.readUInt32BE(0) !== 0;
    this.delivered = 0;

    if (opcode === OPCODES.close || opcode === OPCODES.ping || opcode === OPCODES.pong) {
      if (!fin) this.fail(`a fragmented control frame (opcode ${opcode})`);
      if (length > MAX_CONTROL_PAYLOAD) this.fail(`a control frame of ${length} bytes (at most ${MAX_CONTROL_PAYLOAD})`);
      this.controlOpcode = opcode;
      this.control = Buffer.alloc(length);
      this.state = 'control';
      if (length === 0) this.endControlFrame();
      return;
    }
    if (opcode !== OPCODES.continuation && opcode !== OPCODES.text && opcode !== OPCODES.binary) this.fail(`a frame with the unknown opcode ${opcode}`);
    if (opcode === OPCODES.continuation) {
      if (this.openMessage === null) this.fail('a continuation frame with no fragmented message to continue');
    } else {
      if (this.openMessage !== null) this.fail('a new message began before the fragmented one ended');
      this.messageBytes = 0;
    }
    this.messageBytes += length;
    if (this.messageBytes > this.options.maxMessageBytes) this.fail(`a message of more than ${this.options.maxMessageBytes} bytes`);
    this.openMessage = fin ? null : opcode === OPCODES.continuation ? this.openMessage : opcode;
    this.frame = { opcode, fin, length };
    this.state = 'payload';
    this.sink.dataFrameStart(this.frame);
    if (length === 0 && !this.halted) this.endDataFrame();
  }

  private endDataFrame(): void {
    this.state = 'header';
    this.sink.dataFrameEnd(this.frame);
  }

  private endControlFrame(): void {
    this.unmask(this.control);
    this.state = 'header';
    this.sink.control(this.controlOpcode, this.control);
  }

  /** Undoes a non-zero mask in place; `this.delivered` bytes of the frame came before `slice`. */
  private unmask(slice: Buffer): void {
    if (!this.masked) return;
    const phase = this.state === 'control' ? 0 : this.delivered;
    for (let i = 0; i < slice.length; i += 1) slice[i] = (slice[i] ?? 0) ^ (this.mask[(phase + i) & 3] ?? 0);
  }
}

/** The header of an unmasked server frame (section 5.2): 2, 4 or 10 bytes. */
export function encodeFrameHeader(opcode: number, fin: boolean, length: number): Buffer {
  const b0 = (fin ? 0x80 : 0) | opcode;
  if (length < 126) return Buffer.from([b0, length]);
  if (length <= 0xffff) {
    const header = Buffer.allocUnsafe(4);
    header[0] = b0;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
    return header;
  }
  const header = Buffer.allocUnsafe(10);
  header[0] = b0;
  header[1] = 127;
  header.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
  header.writeUInt32BE(length >>> 0, 6);
  return header;
}

/** A whole unmasked server frame: header and payload in one buffer (for small frames). */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const header = encodeFrameHeader(opcode, true, payload.length);
  return Buffer.concat([header, payload], header.length + payload.length);
}

/** A close frame's payload: the code, then the reason cut to fit the 125-byte limit on a character boundary. */
export function encodeClosePayload(code: number, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > MAX_CONTROL_PAYLOAD - 2) {
    let cut = MAX_CONTROL_PAYLOAD - 2;
    // Back off to the start of a UTF-8 sequence, so the reason stays valid UTF-8.
    while (cut > 0 && ((text[cut] ?? 0) & 0xc0) === 0x80) cut -= 1;
    text = text.subarray(0, cut);
  }
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return payload;
}

/** A received close frame's code and reason; an empty payload means "no status" (1005). */
export function decodeClosePayload(payload: Buffer): { code: number; reason: string } {
  if (payload.length === 0) return { code: 1005, reason: '' };
  if (payload.length === 1) throw violation('a close frame with a one-byte payload');
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}
