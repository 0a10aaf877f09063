/** The cluster bus's timings and bounds in one literal, each with its reason. */
export interface ClusterLimits {
  /** A start, cancel or get to the holder: past this the bus or the holder is taken as unavailable. */
  requestTimeoutMs: number;
  /** A lookup asked of all controllers: silence this long means no controller has the operation. */
  lookupTimeoutMs: number;
  /** The holder sends `alive` on a quiet routed operation's stream this often. */
  aliveMs: number;
  /** The requester asks the holder about a routed operation whose stream was silent this long. */
  silenceMs: number;
  /**
   * A routed operation whose agent no controller holds for this long ends SEEDWIRE_LOST on the
   * requester (an agent redialing after a dropped link is back well within it).
   */
  orphanFailMs: number;
  /** A routed operation fails SEEDWIRE_BUS_UNAVAILABLE after the bus was down this long during it. */
  busDownFailMs: number;
  /** Largest message this controller publishes (NATS's default max_payload is 1 MiB; headroom for the envelope). */
  maxMessageBytes: number;
  /** Output a requester keeps per routed operation (the holder's store keeps all of it). */
  maxOutputBytes: number;
  /** Ended routed operations whose mirrors stay for GETs. */
  keepEnded: number;
  /** Redial interval of the NATS client. */
  reconnectWaitMs: number;
  /**
   * A seed's lease (with a PostgreSQL store): renewed every third of it; a controller that stops
   * renewing (dead, paused, cut off from the store) loses its seeds to another after this long.
   */
  seedLeaseMs: number;
  /** Every controller looks for seeds whose lease expired this often (and adopts one per look). */
  seedSweepMs: number;
  /** A seed waiting for an agent held by another controller asks for it again this often. */
  summonEveryMs: number;
  /** A new seed waits this long for agents held by other controllers before its prechecks. */
  summonWaitMs: number;
  /**
   * Each controller announces itself this often; one not heard for three intervals no longer
   * counts toward the controllers sharing the fleet (admission paces each by its share).
   */
  memberAnnounceMs: number;
  /**
   * A controller follows the other controllers' events while one of its viewers (SSE, console,
   * output follower) does, and this long after the last one left, so a reload or a reconnect finds
   * the fleet's recent events still there; then it stops (events-bridge.ts).
   */
  eventsLingerMs: number;
  /** A new viewer waits at most this long for the bus server to confirm that the controller follows the fleet's events. */
  eventsPrepareTimeoutMs: number;
}

export const CLUSTER_LIMITS: Readonly<ClusterLimits> = {
  requestTimeoutMs: 5_000,
  lookupTimeoutMs: 1_000,
  aliveMs: 2_000,
  silenceMs: 6_000,
  orphanFailMs: 30_000,
  busDownFailMs: 60_000,
  maxMessageBytes: 512 * 1024,
  maxOutputBytes: 1024 * 1024,
  keepEnded: 1_000,
  reconnectWaitMs: 1_000,
  seedLeaseMs: 15_000,
  seedSweepMs: 5_000,
  summonEveryMs: 3_000,
  summonWaitMs: 20_000,
  memberAnnounceMs: 2_000,
  eventsLingerMs: 10 * 60_000,
  eventsPrepareTimeoutMs: 2_000,
};
