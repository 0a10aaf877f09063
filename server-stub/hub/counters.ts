/** Plain counters the hub keeps; the metrics module reads them at scrape time. */
export interface HubCounters {
  framesIn: number;
  framesOut: number;
  badFrames: number;
  bytesRelayed: number;
  relayDropped: number;
  /** Agent upgrades answered 503 + Retry-After by admission pacing. */
  upgradesPaced: number;
}

export function createHubCounters(): HubCounters {
  return { framesIn: 0, framesOut: 0, badFrames: 0, bytesRelayed: 0, relayDropped: 0, upgradesPaced: 0 };
}
