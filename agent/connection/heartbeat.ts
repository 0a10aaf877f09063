/**
 * Heartbeat of one socket: a ping every `intervalMs`, and `onDead` when nothing at all came in
 * for `deadAfterMs` (any inbound frame is life; ws keeps a half-open socket OPEN forever).
 */
export interface Heartbeat {
  /** Something arrived from the peer. */
  touch(): void;
  dispose(): void;
}

export function startHeartbeat(options: { intervalMs: number; deadAfterMs: number; sendPing: () => void; onDead: () => void }): Heartbeat {
  let disposed = false;
  const pinger = setInterval(() => options.sendPing(), options.intervalMs);
  const deadTimer = setTimeout(() => {
    if (disposed) return;
    disposed = true;
    clearInterval(pinger);
    options.onDead();
  }, options.deadAfterMs);
  pinger.unref();
  deadTimer.unref();
  return {
    touch(): void {
      if (!disposed) deadTimer.refresh();
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      clearInterval(pinger);
      clearTimeout(deadTimer);
    },
  };
}
