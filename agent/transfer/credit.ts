/**
 * The receiver's side of flow control, shared by the tree receiver (receive.ts) and the backup
 * stream receiver (receive-stream.ts): one credit window, and one list of the failures that mean
 * the received data is wrong rather than interrupted.
 *
 * Credit is an absolute stream offset: the sender never sends a byte at or past the latest grant.
 * The window starts at LIMITS.windowInitialBytes and doubles, each time a whole window has been
 * handled, up to windowMaxBytes; so the port never queues more than one window and memory stays
 * bounded whatever the sender's speed.
 *
 * How the first credit travels — one way, as a credit frame like every later grant:
 * `open()` → ReceivePort.grant → the controller's relay → the source agent's stream port. The
 * source's seed-send may open its port only after that frame arrived, so the agent's stream port
 * keeps the latest grant of a stream that has no sender yet and starts the sender from it
 * (agent/streams/port.ts), and the relay sends a route's latest grant again to a sending agent
 * that reconnects (server-stub/hub/relay.ts). No grant is lost and none travels another way.
 */
import { SeedwireError, type ErrorCode } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import type { ReceivePort } from '../streams/types.js';

/**
 * Failures that mean the stream or the stored data is wrong, not merely interrupted: the tree
 * receiver stores no resume point after them, and neither receiver reports them as canceled.
 */
export const FATAL_RECEIVE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SEEDWIRE_VERIFY_FAILED',
  'SEEDWIRE_PATH_ESCAPE',
  'SEEDWIRE_BAD_FRAME',
  'SEEDWIRE_PROTOCOL_VERSION',
]);

export function isFatalReceiveError(error: unknown): boolean {
  return error instanceof SeedwireError && FATAL_RECEIVE_CODES.has(error.code);
}

/**
 * The error a receive stops with: once its signal aborted, anything but a fatal failure is
 * SEEDWIRE_CANCELED with `canceledMessage`, since the abort is what ended it.
 */
export function receiveStopError(error: unknown, signal: AbortSignal, canceledMessage: string): unknown {
  if (signal.aborted && !isFatalReceiveError(error)) return new SeedwireError('SEEDWIRE_CANCELED', canceledMessage, { cause: error });
  return error;
}

export interface CreditWindowOptions {
  /** @default LIMITS.windowInitialBytes */
  initialBytes?: number | undefined;
  /** @default LIMITS.windowMaxBytes (never below initialBytes) */
  maxBytes?: number | undefined;
}

export class CreditWindow {
  private window: number;
  private readonly max: number;
  private grownAt = 0;

  constructor(
    private readonly port: Pick<ReceivePort, 'grant'>,
    options: CreditWindowOptions = {},
  ) {
    this.window = options.initialBytes ?? LIMITS.windowInitialBytes;
    this.max = Math.max(this.window, options.maxBytes ?? LIMITS.windowMaxBytes);
  }

  /** The current window in bytes. */
  get size(): number {
    return this.window;
  }

  /** The first grant: one window past the offset the sender starts from. */
  open(offset: number): void {
    this.grownAt = offset;
    this.port.grant(offset + this.window);
  }

  /** Bytes up to `offset` have been handled: grow the window if a whole one went by, and grant. */
  advance(offset: number): void {
    if (offset - this.grownAt >= this.window && this.window < this.max) {
      this.window = Math.min(this.max, this.window * 2);
      this.grownAt = offset;
    }
    this.port.grant(offset + this.window);
  }
}
