/**
 * One data connection after the controller's own WebSocket handshake (data-upgrade.ts): the raw
 * socket, a frame parser for what the agent sends and a writer for what the controller sends. It
 * answers pings, notes pongs, runs the closing handshake, and hands data frames to its pipe as
 * payload slices; the pipe decides where they go.
 *
 * Why the socket is not given to ws: ws delivers whole messages, and reassembling each 1 MiB data
 * message from 64 KiB socket reads was a third of the controller's CPU (docs/performance.md).
 * Nothing here touches ws: Node's 'upgrade' event hands over the socket, and the handshake and the
 * framing are RFC 6455's, written here and tested on literal bytes.
 *
 * The writer knows whether it is inside a streamed frame (its header written, payload still
 * coming from the other side): a control frame may not be written into another frame's payload,
 * so one waits for the frame's end (the latest ping and pong only, a close replaces both).
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { toSeedwireError } from '../../shared/errors.js';
import type { DataRole } from '../../shared/data-link.js';
import { acceptValueOf } from './data-upgrade.js';
import {
  CLOSE_ABNORMAL,
  FrameParser,
  decodeClosePayload,
  encodeClosePayload,
  encodeFrame,
  encodeFrameHeader,
  OPCODES,
  type FrameSink,
  type ControlOpcode,
  type FrameStart,
} from '../../shared/ws-wire.js';

/** What a peer hands its pipe. */
export interface DataPeerHandler {
  /** A socket chunk is about to be parsed / was parsed (the pipe corks and checks backpressure around it). */
  chunkStart(): void;
  chunkEnd(): void;
  frameStart(frame: FrameStart): void;
  payload(slice: Buffer): void;
  frameEnd(frame: FrameStart): void;
  /** The agent broke the framing rules; the message names how. */
  violation(message: string): void;
  /** The connection ended: a close frame from the agent (its code and reason) or the socket ending (1006). */
  ended(code: number, reason: string): void;
}

export interface DataPeerOptions {
  /** Largest message the agent may send (all fragments together). */
  maxMessageBytes: number;
  /** After sending a close frame, how long to wait for the agent to close before destroying the socket. */
  closeWaitMs: number;
}

/** Writes the 101 answer of an accepted data connection (its request was checked by data-upgrade.ts). */
export function writeSwitchingProtocols(socket: Duplex, key: string): void {
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptValueOf(key)}\r\n\r\n`);
}

/** A close code that may be echoed on the wire (RFC 6455 7.4): others are answered with 1000. */
function echoable(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

interface QueuedControl {
  opcode: ControlOpcode;
  frame: Buffer;
}

export class DataPeer implements FrameSink {
  private readonly parser: FrameParser;
  /** Payload bytes of the outgoing frame still to be written (0: between frames). */
  private remaining = 0;
  private queued: QueuedControl[] = [];
  private closeSent = false;
  private endedOnce = false;
  private awaitingPong = false;
  private destroyTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Duplex,
    readonly role: DataRole,
    private readonly handler: DataPeerHandler,
    private readonly log: Logger,
    private readonly options: DataPeerOptions,
  ) {
    this.parser = new FrameParser(this, { maxMessageBytes: options.maxMessageBytes });
    const tcp = socket as Duplex & { setTimeout?: (ms: number) => void; setNoDelay?: (on: boolean) => void };
    // As ws does for its sockets: no idle timeout (liveness is the pipe's pings), no Nagle delay for credit frames.
    tcp.setTimeout?.(0);
    tcp.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (error) => this.log.debug({ role, err: error.message }, 'data connection error'));
    // The HTTP server's sockets allow half-open connections: an agent that ends its side without a close frame is gone.
    socket.on('end', () => this.end(CLOSE_ABNORMAL, ''));
    socket.on('close', () => {
      clearTimeout(this.destroyTimer);
      this.end(CLOSE_ABNORMAL, '');
    });
  }

  /** Parses the bytes that came with the upgrade request; the socket's own come later, as events. */
  start(head: Buffer): void {
    if (head.length > 0) this.read(head);
  }

  /** Whether a ping was written and no pong came since. */
  get silent(): boolean {
    return this.awaitingPong;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  get open(): boolean {
    return !this.closeSent && !this.endedOnce && !this.socket.destroyed;
  }

  /** Starts an outgoing data frame whose payload follows through `writePayload`. */
  startFrame(opcode: number, fin: boolean, length: number): void {
    if (!this.open) return;
    this.socket.write(encodeFrameHeader(opcode, fin, length));
    this.remaining = length;
    if (length === 0) this.flushQueued();
  }

  writePayload(slice: Buffer, written?: () => void): void {
    if (!this.open) return;
    this.remaining -= slice.length;
    this.socket.write(slice, written);
    if (this.remaining === 0) this.flushQueued();
  }

  /** A whole text frame (credit); only between frames, which is always so towards a sender. */
  sendText(text: string): void {
    if (!this.open || this.remaining > 0) return;
    this.socket.write(encodeFrame(OPCODES.text, Buffer.from(text, 'utf8')));
  }

  /** Pings, unless a ping is already waiting for the outgoing frame's end. */
  ping(): void {
    if (!this.open || this.queued.some((q) => q.opcode === OPCODES.ping)) return;
    this.sendControl(OPCODES.ping, Buffer.alloc(0));
  }

  /**
   * Sends a close frame and ends the socket, destroying it if the agent has not closed within
   * closeWaitMs. Inside an outgoing frame no close frame can be written: the socket is destroyed
   * (the agent sees 1006, as when the connection drops). Idempotent.
   */
  close(code: number, reason: string): void {
    if (this.closeSent) return;
    this.closeSent = true;
    this.parser.halt();
    this.queued = [];
    if (this.socket.destroyed) return;
    if (this.remaining > 0) {
      this.socket.destroy();
      return;
    }
    this.socket.end(encodeFrame(OPCODES.close, encodeClosePayload(code, reason)));
    // Keep reading (and discarding) so the agent's close frame and FIN are seen.
    this.socket.resume();
    this.destroyTimer = setTimeout(() => this.socket.destroy(), this.options.closeWaitMs);
    this.destroyTimer.unref();
  }

  /** Ends the connection at once (a silent peer). */
  terminate(): void {
    this.closeSent = true;
    this.parser.halt();
    this.socket.destroy();
  }

  dataFrameStart(frame: FrameStart): void {
    this.handler.frameStart(frame);
  }

  dataPayload(slice: Buffer): void {
    this.handler.payload(slice);
  }

  dataFrameEnd(frame: FrameStart): void {
    this.handler.frameEnd(frame);
  }

  control(opcode: ControlOpcode, payload: Buffer): void {
    if (opcode === OPCODES.pong) {
      this.awaitingPong = false;
    } else if (opcode === OPCODES.ping) {
      this.sendControl(OPCODES.pong, payload);
    } else {
      let code: number;
      let reason: string;
      try {
        ({ code, reason } = decodeClosePayload(payload));
      } catch (error) {
        this.handler.violation(toSeedwireError(error).message);
        return;
      }
      // The closing handshake: echo the agent's code, then the pipe ends the other side.
      this.close(echoable(code) ? code : 1000, '');
      this.end(code, reason);
    }
  }

  private read(chunk: Buffer): void {
    if (this.closeSent) return;
    this.handler.chunkStart();
    try {
      this.parser.push(chunk);
    } catch (error) {
      this.handler.violation(toSeedwireError(error).message);
    } finally {
      this.handler.chunkEnd();
    }
  }

  private end(code: number, reason: string): void {
    if (this.endedOnce) return;
    this.endedOnce = true;
    this.parser.halt();
    this.handler.ended(code, reason);
  }

  private sendControl(opcode: ControlOpcode, payload: Buffer): void {
    const frame = encodeFrame(opcode, payload);
    if (this.remaining > 0) {
      // Only the latest of each kind waits: an answer to the latest ping is all a pong must be.
      this.queued = this.queued.filter((q) => q.opcode !== opcode);
      this.queued.push({ opcode, frame });
      return;
    }
    this.writeControl({ opcode, frame });
  }

  private writeControl(control: QueuedControl): void {
    if (control.opcode === OPCODES.ping) this.awaitingPong = true;
    this.socket.write(control.frame);
  }

  private flushQueued(): void {
    const queued = this.queued;
    this.queued = [];
    for (const control of queued) this.writeControl(control);
  }
}
