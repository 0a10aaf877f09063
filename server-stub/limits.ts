/**
 * The controller's own timings and bounds (not part of the protocol; those are in
 * shared/limits.ts), in one literal so they can be found and tuned together. Per-instance options
 * that tests override keep their defaults beside their module (ADMISSION_DEFAULTS,
 * EXPOSURE_DEFAULTS, DEFAULT_VIEWER_LIMITS, THROUGHPUT_DEFAULTS).
 */
export const CONTROLLER_LIMITS = {
  /**
   * @default 600_000 ms a stream token stays valid unused: the source dials only once its source
   * is ready (a snapshot mounted, a backup tool started), which can take minutes; the token dies
   * earlier anyway when its stream closes.
   */
  streamTokenTtlMs: 600_000,
  /**
   * @default 10_000 ms between two writes of one agent's last-seen time: every inbound frame
   * counts as seen, and a fleet writing SQLite on each would cost more than the field is worth.
   */
  lastSeenWriteMs: 10_000,
  /**
   * @default 1_000 ms last-seen times wait to be written together: one statement per 256 agents
   * instead of one per agent (an ended session's goes out at once).
   */
  lastSeenFlushMs: 1_000,
  /**
   * @default 50 ms a read-only operation (hostname, facts, ...) runs before its row is written, on
   * a PostgreSQL store: one that ends sooner is recorded whole in one store call after its reply
   * (server-stub/ops/runner.ts).
   */
  opStartDeferMs: 50,
  /** @default 10_000 ms between the summary log lines of paced-out upgrades (one line, not one per refusal). */
  admissionLogMs: 10_000,
  /**
   * @default 1_000 ms admission's measurements (known fleet size from the store, connected
   * agents, event-loop delay) are kept before they are read again.
   */
  fleetSizeTtlMs: 1_000,
  /** @default 10 ms resolution of the event-loop delay admission measures: its thresholds are tens of ms. */
  admissionDelayResolutionMs: 10,
  /**
   * @default 20 ms between liveness checks of a session at least: tests shorten heartbeats to
   * tens of ms, and a tighter timer would only burn CPU.
   */
  livenessTickMinMs: 20,
  /**
   * @default 3 liveness checks per dead-after period at least, so a silent agent is terminated
   * within a third of that period after it crosses the line.
   */
  livenessChecksPerDeadPeriod: 3,
  /**
   * @default 1_000 ms between two liveness sweeps at most (one timer for all sessions, not one
   * each): a ping goes out at most this late, and a sweep over 10,000 sessions costs well under a
   * millisecond.
   */
  livenessSweepMaxMs: 1_000,
  /**
   * @default 6 heartbeat periods between two pings to an agent that pings us itself (its pong
   * from us does what our ping would): often enough to sample the round-trip metric.
   */
  livenessRttEveryPeriods: 6,
  /**
   * @default 10_000 source addresses tracked for the auth-failure limit at most (beyond it expired
   * windows are pruned, then the oldest dropped): a scan from many addresses cannot grow the
   * table without bound, and 10,000 small entries cost a few MB.
   */
  exposureTrackedAddresses: 10_000,
  /**
   * @default 1 MiB left unread in a live output follower's socket before it gets a "bytes skipped"
   * marker instead of more output: one slow reader must not hold the controller's memory; the
   * stored output stays complete.
   */
  followHighWaterBytes: 1024 * 1024,
  /**
   * @default 10_000 ended operations remembered by the metrics so an end published again (after
   * a reconnect) is not counted twice; repeats come within seconds, far fewer than this.
   */
  metricsEndedMemory: 10_000,
  /** @default 4096 characters of an error frame's message: enough for a reason, bounded for the agent's log. */
  errorFrameMessageChars: 4096,
} as const;
