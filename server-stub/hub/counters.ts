/** Plain counters the hub keeps; the metrics module reads them at scrape time. */
export interface HubCounters {
  framesIn: number;
  framesOut: number;
  badFrames: number;
  bytesRelayed: number;
  relayDropped: number;
  /** Data frames that arrived on agents' control sockets (streams of agents without data connections). */
  controlDataFrames: number;
  /** Data connections accepted (two per stream that uses them). */
  dataConnections: number;
  /** Data connection upgrades refused (bad, used, expired or misdirected stream tokens). */
  dataRefused: number;
  /** Agent sessions accepted, those of agents already known (a redial), and sessions ended. */
  sessions: number;
  reconnects: number;
  disconnects: number;
  /** Called with each heartbeat round trip (ping sent → pong received), in seconds; metrics sets it. */
  observeHeartbeatRtt: (seconds: number) => void;
  /** Agent upgrades answered 503 + Retry-After by admission pacing. */
  upgradesPaced: number;
  /** Welcomes held back to keep a herd's welcomes within the admission rate. */
  welcomesHeld: number;
}

export function createHubCounters(): HubCounters {
  return { framesIn: 0, framesOut: 0, badFrames: 0, bytesRelayed: 0, relayDropped: 0, controlDataFrames: 0, dataConnections: 0, dataRefused: 0, sessions: 0, reconnects: 0, disconnects: 0, upgradesPaced: 0, welcomesHeld: 0, observeHeartbeatRtt: () => {} };
}
