/**
 * The link's state as host monitoring sees it (agent/status/): whether the agent is connected,
 * since when, and when the controller was last heard from. Updated by link.ts, read by the status
 * writer; wall-clock times because they are shown to people and compared across processes.
 */
/** `connecting` only until the first dial ends; an agent redialing after a loss stays `disconnected`. */
export type LinkState = 'connecting' | 'connected' | 'disconnected';

export interface LinkStatusView {
  state: LinkState;
  /** The controller the agent is on; while not connected, the one it is dialing or last dialed (`lastError` is its answer). */
  controller: string;
  /** When the current state began (ISO). */
  since: string;
  /** The last frame (any frame, pings included) from the controller (ISO), or null if never. */
  lastContactAt: string | null;
  sessionId: string | null;
  /** Welcomed sessions since start; more than one means the agent has reconnected. */
  sessions: number;
  /** The last socket error or handshake refusal, cleared when a session starts. */
  lastError: string | null;
}

export class LinkStatus {
  private state: LinkState = 'connecting';
  private controller: string;
  private since = Date.now();
  private lastContact: number | null = null;
  private sessionId: string | null = null;
  private sessions = 0;
  private lastError: string | null = null;

  constructor(firstController: string) {
    this.controller = firstController;
  }

  /** A dial to `url` starts. */
  dialing(url: string): void {
    this.controller = url;
  }

  connected(sessionId: string): void {
    this.enter('connected');
    this.sessionId = sessionId;
    this.sessions += 1;
    this.lastError = null;
  }

  disconnected(): void {
    this.enter('disconnected');
    this.sessionId = null;
  }

  heard(): void {
    this.lastContact = Date.now();
  }

  failed(message: string): void {
    this.lastError = message;
  }

  view(): LinkStatusView {
    return {
      state: this.state,
      controller: this.controller,
      since: new Date(this.since).toISOString(),
      lastContactAt: this.lastContact === null ? null : new Date(this.lastContact).toISOString(),
      sessionId: this.sessionId,
      sessions: this.sessions,
      lastError: this.lastError,
    };
  }

  private enter(state: LinkState): void {
    if (this.state === state) return;
    this.state = state;
    this.since = Date.now();
  }
}
