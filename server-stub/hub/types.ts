/**
 * The controller's view of connected agents, used by the operation runner, the seed state
 * machine and the HTTP API. Implemented in server-stub/hub/hub.ts.
 */
import type { Facts, OutputFrame } from '../../shared/frames.js';
import type { OpName, OpParamsInput, OpProgressOf, OpResultOf } from '../../shared/ops.js';
import type { StreamTokens } from './stream-tokens.js';

export interface AgentInfo {
  id: string;
  hostname: string;
  datacenter: string | null;
  connected: boolean;
  connectedAt: string | null;
  lastSeenAt: string | null;
  version: string;
  capabilities: string[];
  /** Agent clock minus controller clock at handshake, ms (positive: agent ahead). */
  clockSkewMs: number | null;
  /** Enrollment state (absent in stand-ins that do not track identities). */
  identity?: IdentityView;
}

/**
 * How an agent id proves itself and whether it may: 'unenrolled' (the enrollment token may claim
 * it), 'enrolled', 'revoked' (refused until readmitted), 'readmitted' (may enroll once more).
 */
export interface IdentityView {
  state: 'unenrolled' | 'enrolled' | 'revoked' | 'readmitted';
  /** credential (enrolled with the enrollment token), token (--agent-tokens), certificate (mutual TLS). */
  method: 'credential' | 'token' | 'certificate' | null;
  enrolledAt: string | null;
  revokedAt: string | null;
  readmittedAt: string | null;
}

export interface CallOptions<N extends OpName = OpName> {
  /** Reuse an id (resuming after a restart); default: a fresh uuid. */
  callId?: string;
  signal?: AbortSignal;
  /** Passed to the agent as the op's timeout. */
  timeoutMs?: number;
  /**
   * Each output frame once, in seq order; `lost`: frames the agent sent before it that never came
   * (forgotten by the agent past its buffer while this controller had not stored them). A promise
   * returned resolves once the frame is stored: only then is it acknowledged to the agent, which
   * sends unacknowledged output again after a reconnect; one that rejects leaves it unacknowledged.
   * Without a promise it is acknowledged at once.
   */
  onOutput?: (frame: OutputFrame, lost: number) => void | Promise<void>;
  /**
   * The agent's seq of the last output frame already stored for this call id (a call resumed after
   * a controller restart): frames up to it are not passed on again. Undefined: none known.
   */
  lastOutputSeq?: number;
  /** Progress of the op's shape (shared/ops.ts OP_PROGRESS); frames of another shape are dropped and logged. */
  onProgress?: (data: OpProgressOf<N>) => void;
  /**
   * What to do when the agent's link drops while the call runs:
   * 'wait' (default): keep waiting; the agent delivers the result after reconnecting.
   * 'fail': reject at once with SEEDWIRE_DISCONNECTED (bulk streams, which cannot outlive the link).
   */
  onDisconnect?: 'wait' | 'fail';
}

/** Call options as the wire sees them: progress not yet checked against the op's schema. */
export type RawCallOptions = Omit<CallOptions, 'onProgress'> & { onProgress?: (data: Record<string, unknown>) => void };

export interface CallOutcome<R = unknown> {
  /** The op's result, validated against its schema in shared/ops.ts. */
  result: R;
  exitCode: number | null;
  durationMs: number;
}

export type HubEvent =
  | { type: 'agent-connected'; agent: AgentInfo }
  | { type: 'agent-disconnected'; agent: AgentInfo; reason: string }
  | { type: 'facts'; agentId: string; facts: Facts }
  | { type: 'identity'; agentId: string };

export interface AgentHub {
  /**
   * Sends a call and resolves with its result. Rejects with a SeedwireError: the agent's error
   * code, SEEDWIRE_AGENT_OFFLINE when not connected at the start, SEEDWIRE_CANCELED when the
   * signal aborts (a cancel frame is sent), SEEDWIRE_DISCONNECTED per `onDisconnect`,
   * SEEDWIRE_PROTOCOL when the agent's result does not match the op's result schema.
   */
  call<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options?: CallOptions<N>): Promise<CallOutcome<OpResultOf<N>>>;
  isConnected(agentId: string): boolean;
  /** A connected agent from its session, any other from the store; null when it never connected. */
  agent(agentId: string): Promise<AgentInfo | null>;
  /** Every agent the store knows, by id (one read for the fleet, not one per agent). */
  agents(): Promise<AgentInfo[]>;
  /** Facts as last reported to this process (null before the first report since it started). */
  facts(agentId: string): Facts | null;
  /** Resolves when the agent is connected (at once if it is); rejects when the signal aborts. */
  waitForAgent(agentId: string, signal?: AbortSignal): Promise<void>;
  on(listener: (event: HubEvent) => void): () => void;
  /**
   * Sends a connected agent a `move` frame: close this link and dial `url` next (cluster mode,
   * docs/scale-out.md). The agent obeys only when `url` is one of its configured controllers.
   * False when the agent is not connected here.
   */
  move(agentId: string, url: string, reason: string): boolean;
  /** Bulk stream relay: data frames `from` → `to`, credit frames `to` → `from`. */
  relay: StreamRelay;
}

export interface StreamRelay {
  /** A fresh stream id, unique for this controller process's lifetime. */
  allocate(): number;
  /**
   * Route stream `stream`: binary data from agent `from` to agent `to`, credit back. Returns the
   * stream's two one-time tokens when both agents dial data connections (pass `send` to the
   * source's seed-send, `receive` to the target's seed-receive), or null: the bytes then travel on
   * the control sockets. The tokens die with the stream (close).
   */
  open(stream: number, route: { from: string; to: string }): StreamTokens | null;
  close(stream: number): void;
  /** The latest credit limit the receiver granted on this stream (0 if none yet). */
  creditLimit(stream: number): number;
  /** Resolves once the receiver's credit exceeds `atLeast`. */
  waitForCredit(stream: number, atLeast: number, signal?: AbortSignal): Promise<number>;
  /** Bytes relayed on this stream so far (for metrics and tests). */
  bytesRelayed(stream: number): number;
}
