/**
 * The seed machine's timings and limits in one literal (the protocol's own are in
 * shared/limits.ts). Values are the ones the seed has always used; docs/seed-flow.md explains
 * the rules they serve.
 */
import { LIMITS } from '../../shared/limits.js';

export const SEED_LIMITS = {
  /** @default 0.05 — extra room the target needs beyond the source's size, as a share of it. */
  spaceMarginRatio: 0.05,
  /** @default 64 MiB — extra room the target needs beyond the source's size, on top of the ratio. */
  spaceMarginBytes: 64 * 1024 * 1024,
  /**
   * @default 4 — most lanes a seed gets when it does not ask (fewer when source or target has
   * fewer CPUs): beyond the cores, lanes only add seeks and memory (each lane has its own window).
   */
  defaultMaxLanes: 4,
  /** @default 5 — transfer attempts in a row that make no progress before the seed gives up. */
  maxFruitlessAttempts: 5,
  /** @default 30_000 ms — a precheck's quick question to an agent (MySQL status, free space). */
  precheckCallMs: 30_000,
  /** @default 300_000 ms — the precheck's size of the source datadir (a `du` of a large tree). */
  precheckSizeMs: 300_000,
  /** @default 10 min — how long a seed waits for a disconnected agent before failing (plugin option `reconnectWaitMs`). */
  reconnectWaitMs: 10 * 60_000,
  /** @default 60_000 ms — how long the target cleanup after a failure waits for the target agent (it must not hold up the seed's end for long). */
  cleanupTargetWaitMs: LIMITS.drainMs * 2,
  /** @default 250 ms — live progress reaches the API and the event stream at most this often. */
  publishMs: 250,
  /** @default 1_000 ms — progress is persisted at most this often, and published at least this often during a transfer. */
  persistMs: 1_000,
} as const;

/** Room the target must have for a source of `bytes`: the size plus both margins. */
export function requiredBytes(bytes: number): number {
  return Math.ceil(bytes * (1 + SEED_LIMITS.spaceMarginRatio)) + SEED_LIMITS.spaceMarginBytes;
}
