/** One welcomed connection, as the rest of the agent sees it. */
import type WebSocket from 'ws';
import { encodeFrame } from '../../shared/codec.js';
import type { Frame } from '../../shared/frames.js';

export interface Session {
  readonly id: string;
  /** Aborted when this connection ends, for whatever reason. */
  readonly signal: AbortSignal;
  /** Sends a text frame; false when the socket is no longer open (the frame was not sent). */
  send(frame: Frame): boolean;
  /** Sends a binary frame; `onWritten` runs once ws has handed it to the kernel (or failed). */
  sendBinary(data: Buffer, onWritten?: (error?: Error) => void): boolean;
  /** Bytes queued in ws not yet written to the socket. */
  readonly bufferedAmount: number;
}

export function createSession(id: string, ws: WebSocket, signal: AbortSignal): Session {
  const isOpen = (): boolean => !signal.aborted && ws.readyState === ws.OPEN;
  return {
    id,
    signal,
    send(frame: Frame): boolean {
      if (!isOpen()) return false;
      ws.send(encodeFrame(frame));
      return true;
    },
    sendBinary(data: Buffer, onWritten?: (error?: Error) => void): boolean {
      if (!isOpen()) return false;
      ws.send(data, { binary: true }, onWritten);
      return true;
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
  };
}
