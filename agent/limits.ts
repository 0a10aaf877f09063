/**
 * The agent's own timings and bounds (not part of the protocol; those are in shared/limits.ts),
 * in one literal so they can be found and tuned together. Each says why its value.
 */
export const AGENT_LIMITS = {
  /**
   * @default 250 ms between status-command polls while a start or stop takes effect: a status
   * command is a cheap local check, and MySQL takes seconds to start, so finer gains nothing.
   */
  mysqlPollMs: 250,
  /**
   * @default 30_000 ms for one status command at most: a hung status command must not hang the
   * agent; a healthy one answers in well under a second even on a loaded host.
   */
  mysqlStatusTimeoutMs: 30_000,
  /**
   * @default 5_000 ms for the status command when facts are collected: facts are refreshed often
   * and fail soft, so a slow status counts as unknown instead of delaying every other fact.
   */
  factsStatusTimeoutMs: 5_000,
  /**
   * @default 30_000 ms between facts collections (sent only when they changed): a change made on
   * the host by hand shows within this period; collecting runs the status command, so not often.
   */
  factsRefreshMs: 30_000,
  /**
   * @default 2_000 ms between checks that nothing started on a datadir a seed is receiving into:
   * each check scans /proc, so it is not free, and a MySQL that starts needs seconds before it
   * writes anything a seed would clobber.
   */
  datadirRecheckMs: 2_000,
  /**
   * A process seen with a datadir file open is looked at this many times more, this far apart,
   * and refuses only if it still has one open every time: a transient reader (another tool's walk
   * of the datadir) must not stop a seed; a server keeps its files open.
   */
  guardOpenFileRechecks: 2,
  guardOpenFilePauseMs: 150,
  /**
   * @default 2_000 ms that output still in the pipes is read after bash exits: draining a pipe
   * takes milliseconds, and a background grandchild holding the pipes open must not hang the call.
   */
  execPipeGraceMs: 2_000,
  /** @default 1_000 ms for a connect attempt on a MySQL socket before it counts as "something is there". */
  socketProbeMs: 1_000,
  /** @default 2 directory levels of the datadir matched against /proc/locks: the datadir and its schemas. */
  lockScanDepth: 2,
  /** @default 200_000 files stat'ed for the lock check at most (a datadir with more tables is matched on these). */
  lockScanMaxFiles: 200_000,
  /** @default 256 bytes read of the incomplete marker: it holds one short JSON line. */
  markerReadBytes: 256,
  /** @default 64 KiB read per step when reading the error log backwards from its end. */
  errorLogChunkBytes: 64 * 1024,
  /** @default 4 MiB read from the end of the error log at most, however long its lines. */
  errorLogTailMaxBytes: 4 * 1024 * 1024,
  /** @default 4 MiB of `lvs` JSON kept: room for the whole report (a few hundred bytes per LV). */
  lvsOutputBytes: 4 * 1024 * 1024,
  /**
   * @default 100 finished calls whose output is kept until the link is back (it is sent before
   * their results): each keeps at most LIMITS.outputBufferBytes, so a long disconnect holds at
   * most about 100 MiB; past it the oldest call's output is dropped (its result stays in the ledger).
   */
  undeliveredOutputCalls: 100,
  /**
   * @default 4 lines per kept entry before the idempotency ledger's journal is compacted: rewriting
   * costs one pass over the entries, so it runs once the journal has grown well past them.
   */
  ledgerCompactRatio: 4,
} as const;
