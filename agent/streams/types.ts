/**
 * Bulk byte streams between an agent and the controller (which relays them to another agent).
 * The connection layer implements this port; the transfer code (agent/transfer/) only uses it.
 *
 * Flow control is credit based and end to end: the receiver grants `limit` (absolute stream
 * offset); the controller forwards it to the sender; the sender never sends a byte at or past it.
 */
import type { Codec } from '../../shared/codec.js';
import type { DataTicket } from '../../shared/data-link.js';
import type { BufferHold } from './receive-buffers.js';

export interface SendPort {
  /**
   * Resolves once bytes [offset, offset+rawLength) may be sent: credit reaches past them and the
   * socket's send buffer is below its high watermark. Rejects when the signal aborts or the link drops.
   */
  ready(offset: number, rawLength: number, signal: AbortSignal): Promise<void>;
  /**
   * Sends one data frame (payload: the raw bytes, or their compressed form per `codec`). Without
   * `inPlace` the payload is copied into the frame: the caller may reuse it at once. With it, the
   * DATA_HEADER_BYTES before `payload` in its ArrayBuffer are the caller's room for the frame's
   * header: the frame is sent from the payload's own memory (no copy), and `inPlace.released`
   * runs once the connection no longer holds it (written or failed); until then the caller must
   * not touch it. When send throws, nothing was handed over.
   */
  send(offset: number, rawLength: number, codec: Codec, payload: Buffer, inPlace?: InPlaceSend): void;
  /** The highest credit limit seen so far. */
  readonly limit: number;
  close(): void;
}

export interface InPlaceSend {
  released(): void;
}

export interface ReceivedChunk {
  offset: number;
  rawLength: number;
  codec: Codec;
  /** As sent (compressed when codec is not 'none'); CRC already checked. */
  payload: Buffer;
  /**
   * When the payload lies in a pooled receive buffer (receive-buffers.ts): the consumer's
   * reference. Releasing it once nothing reads the payload any more (retaining for whatever keeps
   * it longer, such as a file write in flight) lets the next message reuse the buffer; never
   * releasing it is safe, only slower.
   */
  hold?: BufferHold | undefined;
}

export interface ReceivePort {
  /** Data frames for this stream, in arrival order. Ends when closed; throws when the link drops. */
  chunks(): AsyncIterable<ReceivedChunk>;
  /** Grants the sender credit up to absolute stream offset `limit` (monotonic; lower values are ignored). */
  grant(limit: number): void;
  close(): void;
}

export interface StreamPort {
  /**
   * A sender starts from the latest grant that arrived before it opened (0 if none). With `data`
   * (a stream token from the controller) the stream travels on a data connection of its own,
   * dialed now; without it, on the control link.
   */
  openSend(stream: number, data?: DataTicket): SendPort;
  openReceive(stream: number, data?: DataTicket): ReceivePort;
}
