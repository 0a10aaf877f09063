/** Protocol timings of one agent: LIMITS defaults, overridden by config.advanced. */
import { LIMITS } from '../../shared/limits.js';
import type { AgentConfig } from '../config/schema.js';

export interface Timing {
  /** Overrides the welcome's value when set (config.advanced); otherwise the controller decides. */
  heartbeatMs: number | undefined;
  deadAfterMs: number | undefined;
  handshakeTimeoutMs: number;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  reconnectHealthyMs: number;
  startupJitterMs: number;
  killGraceMs: number;
}

export function resolveTiming(config: Pick<AgentConfig, 'advanced'>): Timing {
  const a = config.advanced;
  return {
    heartbeatMs: a.heartbeatMs,
    deadAfterMs: a.deadAfterMs,
    handshakeTimeoutMs: a.handshakeTimeoutMs ?? LIMITS.handshakeTimeoutMs,
    reconnectBaseMs: a.reconnectBaseMs ?? LIMITS.reconnectBaseMs,
    reconnectCapMs: a.reconnectCapMs ?? LIMITS.reconnectCapMs,
    reconnectHealthyMs: LIMITS.reconnectHealthyMs,
    startupJitterMs: a.startupJitterMs ?? LIMITS.startupJitterMs,
    killGraceMs: a.killGraceMs ?? LIMITS.killGraceMs,
  };
}
