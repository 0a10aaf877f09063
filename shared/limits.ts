/** Every protocol default in one literal; docs/protocol.md explains each. Tune by measurement (make bench). */
export const LIMITS = {
  /** @default 1 — bumped on any incompatible frame change. */
  protocolVersion: 1,
  /** @default 20_000 ms between pings from each side. */
  heartbeatMs: 20_000,
  /** @default 45_000 ms without any inbound frame before the link is declared dead and terminated. */
  deadAfterMs: 45_000,
  /** @default 15_000 ms for the hello/welcome exchange. */
  handshakeTimeoutMs: 15_000,
  /** Agent reconnect: full jitter, capped exponential backoff, reset after a healthy period. */
  reconnectBaseMs: 1_000,
  reconnectCapMs: 60_000,
  reconnectHealthyMs: 60_000,
  startupJitterMs: 5_000,
  /** @default 2 MiB — WebSocket maxPayload on both ends. */
  maxMessageBytes: 2 * 1024 * 1024,
  /** @default 64 — deepest JSON nesting a text frame may have (deeper values overflow the stack when stored). */
  maxJsonDepth: 64,
  /** @default 1 MiB — uncompressed bytes carried by one binary data frame. */
  chunkBytes: 1024 * 1024,
  /** Per-stream credit window granted by a receiver. */
  windowInitialBytes: 4 * 1024 * 1024,
  windowMaxBytes: 16 * 1024 * 1024,
  /** WebSocket send-buffer watermarks: bulk data pauses above high and resumes below low. */
  sendHighWaterBytes: 8 * 1024 * 1024,
  sendLowWaterBytes: 2 * 1024 * 1024,
  /** Cancel: SIGTERM to the process group, SIGKILL after this. */
  killGraceMs: 10_000,
  /** Output of one call kept in agent memory while it cannot be sent (older output becomes a gap). */
  outputBufferBytes: 1024 * 1024,
  /** Largest text carried by one output frame. */
  outputFrameBytes: 64 * 1024,
  /** Output stored per operation by the controller; beyond it the store keeps the head and tail, marking the cut. */
  outputStoreBytes: 4 * 1024 * 1024,
  /** Tail of output returned inline with an operation. */
  outputTailBytes: 8 * 1024,
  /** @default 10_000 — most call ids one ack frame, or a hello's running or pending list, may carry. */
  maxAckIds: 10_000,
  /** Results kept in the agent's idempotency ledger. */
  ledgerEntries: 1_000,
  /** Graceful drain on SIGTERM/SIGINT. */
  drainMs: 30_000,
  /**
   * @default 2_000 ms either end waits for the peer's close frame after sending its own, then
   * terminates: a healthy peer answers within a round trip, a dead one never does.
   */
  closeWaitMs: 2_000,
  /** @default 120 characters of a close reason: WebSocket allows 123 bytes; ours are ASCII. */
  closeReasonChars: 120,
  /**
   * @default 250 ms between two progress frames of one call at most: four updates a second keep
   * the console and the CLI's rate smooth, while a 1 MiB-chunk transfer would otherwise send
   * hundreds a second.
   */
  progressIntervalMs: 250,
} as const;

export type Limits = typeof LIMITS;
