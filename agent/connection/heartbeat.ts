/**
 * Heartbeat of one socket, and `onDead` when nothing at all came in for `deadAfterMs` (any
 * inbound frame is life; ws keeps a half-open socket OPEN forever).
 *
 * Two ways to ping:
 * - `every` (a controller that does not ping agents, or an agent told its own `heartbeatMs`):
 *   a ping every `intervalMs`, whatever arrives;
 * - `when-silent` (the controller pings every agent from its liveness sweep, welcome
 *   `pingsAgents`): a ping only after `intervalMs` with nothing received, again every `intervalMs`
 *   while that lasts. The controller's pings keep the link and any NAT mapping alive, so an agent
 *   of a live controller never pings: the controller writes a second's pings in one turn and reads
 *   their pongs together, instead of waking for every agent's own ping (docs/performance.md).
 */
export interface Heartbeat {
  /** Something arrived from the peer. */
  touch(): void;
  dispose(): void;
}

export interface HeartbeatOptions {
  intervalMs: number;
  deadAfterMs: number;
  /** @default 'every' */
  mode?: 'every' | 'when-silent';
  sendPing: () => void;
  onDead: () => void;
}

export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  let disposed = false;
  const whenSilent = options.mode === 'when-silent';
  // when-silent: one timer, pushed back by every arrival, that re-arms itself while silence lasts.
  const pinger = whenSilent
    ? setTimeout(function ping() {
        if (disposed) return;
        options.sendPing();
        pinger.refresh();
      }, options.intervalMs)
    : setInterval(() => options.sendPing(), options.intervalMs);
  const deadTimer = setTimeout(() => {
    if (disposed) return;
    disposed = true;
    clearTimeout(pinger);
    options.onDead();
  }, options.deadAfterMs);
  pinger.unref();
  deadTimer.unref();
  return {
    touch(): void {
      if (disposed) return;
      deadTimer.refresh();
      if (whenSilent) pinger.refresh();
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      clearTimeout(pinger);
      clearTimeout(deadTimer);
    },
  };
}

/**
 * How long an agent of a controller that pings it waits in silence before it pings itself: one
 * and a half of the controller's period (its pings come every period, give or take its one-second
 * sweep), and never later than halfway from the period to `deadAfterMs`, so the answer to that
 * ping still comes before the link is declared dead.
 */
export function silentPingMs(heartbeatMs: number, deadAfterMs: number): number {
  return Math.max(1, Math.min(Math.round(heartbeatMs * 1.5), Math.round((heartbeatMs + deadAfterMs) / 2)));
}
