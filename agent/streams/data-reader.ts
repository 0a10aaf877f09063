/**
 * The receiving side of a data connection, read without ws: the socket reads into buffers this
 * reader chooses (the `onread` option of net.connect / tls.connect), and a data message's payload
 * goes from the kernel straight into a pooled buffer (receive-buffers.ts), with no copy in
 * between and no allocation per read or per message.
 *
 * Why: ws reads each 64 KiB into a fresh buffer and copies them into a fresh buffer per message;
 * on a receiving agent those messages waited in the receive queue and the file writes long
 * enough to be promoted, and they were most of its peak memory and a third of its collector's
 * time (docs/performance.md, "Where memory and event-loop time go during a seed").
 *
 * How: until the WebSocket is open, every read is handed to the socket as an ordinary chunk (a
 * copy), so the HTTP client and ws run the opening handshake as usual. At ws's 'open' the reader
 * takes the socket's incoming side over (`takeOver`): it removes ws's data listener and parses
 * the server's frames itself (shared/ws-wire.ts). Outside a frame's payload a read goes into a
 * 64 KiB scratch buffer (headers, small frames, the first bytes of a payload are copied from
 * there); inside a long payload the next read goes straight to the message's place in its
 * buffer. Writing stays ws's (credit frames, pongs, the close frame), and so does the socket's
 * end: ws still sees 'end' and 'close' and emits its own 'close'.
 *
 * What ws did on the incoming side and this reader does instead: the size limit of a message
 * (all its fragments), the framing rules (a server's frames unmasked, no RSV bits, control
 * frames whole and short, continuations only inside a message), pings answered (by the channel,
 * through ws) and the close frame's code and reason reported. No extension is negotiated
 * (openSocket: no permessage-deflate), so none is read.
 *
 * Only for sockets the agent opens itself: through an HTTP proxy the tunnel's socket is the
 * proxy agent's, and ws reads it as before.
 */
import { connect as netConnect, isIP, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import { decodeClosePayload, FrameParser, OPCODES, type ControlOpcode, type FrameSink, type FrameStart } from '../../shared/ws-wire.js';
import { RECEIVE_POOL, type BufferHold, type ReceiveBufferPool } from './receive-buffers.js';

/** Reads outside a long payload: frame headers, small frames, the start of a payload. */
const SCRATCH_BYTES = 64 * 1024;
/** A payload with at least this much still to come is read straight into its buffer. */
const DIRECT_READ_MIN_BYTES = 16 * 1024;
/** A whole message below this size gets a buffer of its own size instead of a pooled one. */
const POOLED_MIN_BYTES = 64 * 1024;

export interface DataReaderHandlers {
  /** A whole binary message; `hold` is the pooled buffer's (one reference, now the handler's), if pooled. */
  binary(message: Buffer, hold: BufferHold | undefined): void;
  /** A whole text message. */
  text(message: Buffer): void;
  ping(payload: Buffer): void;
  /** The server's close frame; the reader has stopped. */
  close(code: number, reason: string): void;
  /** A framing violation, or a handler that threw; the reader has stopped. */
  fail(error: unknown): void;
}

interface Message {
  opcode: typeof OPCODES.text | typeof OPCODES.binary;
  buffer: Buffer;
  filled: number;
  hold: BufferHold | undefined;
}

export class DataReader implements FrameSink {
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private readonly parser: FrameParser;
  private socket: Socket | undefined;
  /** Undefined until takeOver: reads are then ordinary chunks for the handshake. */
  private handlers: DataReaderHandlers | undefined;
  private message: Message | undefined;
  /** Whether the read in progress goes straight into the message's buffer. */
  private direct = false;
  private stopped = false;

  /** The `onread` option of the socket (see the module comment). */
  readonly onread = {
    buffer: (): Buffer => this.nextBuffer(),
    callback: (nread: number): boolean => this.onRead(nread),
  };

  constructor(
    private readonly pool: ReceiveBufferPool = RECEIVE_POOL,
    maxMessageBytes: number = LIMITS.maxMessageBytes,
  ) {
    this.parser = new FrameParser(this, { maxMessageBytes, from: 'server' });
  }

  /**
   * ws's `createConnection`: opens the socket with this reader's `onread`, with the options ws
   * would have given net.connect / tls.connect (as ws's own netConnect / tlsConnect set them).
   */
  connector(secure: boolean): (options: Record<string, unknown>) => Socket {
    return (options) => {
      const host = typeof options.host === 'string' ? options.host : '';
      const servername = typeof options.servername === 'string' ? options.servername : isIP(host) ? '' : host;
      // `path` is the request's path to ws; to net.connect it would be a Unix socket's.
      const socket = secure
        ? tlsConnect({ ...options, path: undefined, servername, onread: this.onread } as unknown as ConnectionOptions)
        : netConnect({ ...options, path: options.socketPath, onread: this.onread } as unknown as NetConnectOpts);
      this.socket = socket;
      return socket;
    };
  }

  /**
   * Called in ws's 'open' event: from now on the reader parses every byte that arrives. What the
   * handshake's read left behind (ws put it back into the socket) is parsed first.
   */
  takeOver(handlers: DataReaderHandlers): void {
    const socket = this.socket;
    if (!socket) throw new SeedwireError('SEEDWIRE_INTERNAL', 'data reader: no socket to take over');
    if (this.handlers) throw new SeedwireError('SEEDWIRE_INTERNAL', 'data reader: taken over twice');
    this.handlers = handlers;
    this.pool.open();
    // ws's data listener, the only one at this point (the HTTP client removed its own at the upgrade).
    socket.removeAllListeners('data');
    for (let chunk: unknown = socket.read(); chunk !== null && !this.stopped; chunk = socket.read()) {
      if (Buffer.isBuffer(chunk)) this.parse(chunk);
    }
  }

  /** Stops reading for good (the channel ended); later bytes are dropped. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.parser.halt();
    this.message = undefined;
    if (this.handlers) this.pool.close();
  }

  private nextBuffer(): Buffer {
    const message = this.message;
    const left = this.parser.payloadLeft;
    if (this.handlers && !this.stopped && message && left >= DIRECT_READ_MIN_BYTES) {
      this.direct = true;
      return message.buffer.subarray(message.filled, message.filled + left);
    }
    this.direct = false;
    return this.scratch;
  }

  private onRead(nread: number): boolean {
    const handlers = this.handlers;
    if (!handlers) {
      // The handshake: an ordinary chunk for the HTTP client (a copy: the scratch is read into again).
      return this.socket?.push(Buffer.from(this.scratch.subarray(0, nread))) ?? true;
    }
    if (this.stopped) return true;
    if (this.direct) {
      this.direct = false;
      const message = this.message as Message;
      message.filled += nread;
      this.guard(() => this.parser.payloadDelivered(nread));
    } else {
      this.parse(this.scratch.subarray(0, nread));
    }
    return true;
  }

  private parse(bytes: Buffer): void {
    this.guard(() => this.parser.push(bytes));
  }

  private guard(run: () => void): void {
    try {
      run();
    } catch (error) {
      const handlers = this.handlers;
      this.stop();
      handlers?.fail(error);
    }
  }

  dataFrameStart(frame: FrameStart): void {
    if (frame.opcode === OPCODES.continuation) {
      this.reserve(frame.length);
      return;
    }
    let buffer: Buffer;
    let hold: BufferHold | undefined;
    if (frame.opcode === OPCODES.text || (frame.fin && frame.length < POOLED_MIN_BYTES) || frame.length > this.pool.bufferBytes) {
      buffer = Buffer.allocUnsafe(frame.length);
    } else {
      ({ buffer, hold } = this.pool.take());
    }
    this.message = { opcode: frame.opcode, buffer, filled: 0, hold };
  }

  dataPayload(slice: Buffer): void {
    const message = this.message as Message;
    slice.copy(message.buffer, message.filled);
    message.filled += slice.length;
  }

  dataFrameEnd(frame: FrameStart): void {
    if (!frame.fin) return;
    const message = this.message as Message;
    this.message = undefined;
    const data = message.buffer.subarray(0, message.filled);
    if (message.opcode === OPCODES.binary) this.handlers?.binary(data, message.hold);
    else this.handlers?.text(data);
  }

  control(opcode: ControlOpcode, payload: Buffer): void {
    const handlers = this.handlers;
    if (opcode === OPCODES.ping) handlers?.ping(payload);
    else if (opcode === OPCODES.close) {
      const { code, reason } = decodeClosePayload(payload);
      this.stop();
      handlers?.close(code, reason);
    }
  }

  /** Room for `more` bytes after what the message holds (a continuation frame); a larger buffer if need be. */
  private reserve(more: number): void {
    const message = this.message as Message;
    const need = message.filled + more;
    if (need <= message.buffer.length) return;
    const bigger = Buffer.allocUnsafe(need);
    message.buffer.copy(bigger, 0, 0, message.filled);
    // Nothing but this reader has seen the old buffer's bytes: it may go back at once.
    message.hold?.release();
    message.buffer = bigger;
    message.hold = undefined;
  }
}
