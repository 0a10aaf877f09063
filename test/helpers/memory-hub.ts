/**
 * An in-memory AgentHub for unit tests of the controller's logic (the seed machine): it stands in
 * for the network and the agents' processes, never for the code under test. It speaks the typed
 * contract like the real hub: every result is checked with `checkResult` (a wrong shape is
 * SEEDWIRE_PROTOCOL), progress with `checkedProgress`; calls are cancelled through their signal,
 * `onDisconnect` decides what a link drop does to a call, and a relay carries credit and bytes.
 *
 * Agents are scripted: per op a behaviour that answers, fails with a code, hangs until cancelled,
 * or drops the link. Each agent keeps an idempotency ledger like the real one
 * (agent/dispatch/ledger.ts): a call id seen before attaches to the running call or gets the
 * stored outcome (cancellations included) without running again. Agents outlive a hub, so a
 * "controller restart" is a new MemoryHub over the same agents.
 */
import { SeedwireError, toSeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { Facts } from '../../shared/frames.js';
import type { OpName, OpParamsInput, OpResultOf, SendSummary } from '../../shared/ops.js';
import { checkedProgress, checkResult } from '../../server-stub/hub/contract.js';
import type { AgentHub, AgentInfo, CallOptions, CallOutcome, HubEvent, StreamRelay } from '../../server-stub/hub/types.js';
import { Waitable } from './wait.js';

export interface HandlerContext {
  agent: ScriptedAgent;
  callId: string;
  /** Aborted when the controller cancels the call (or a bulk call's link drops). */
  signal: AbortSignal;
  /** Progress as the agent would send it (checked against the op's progress schema by the hub). */
  progress(data: Record<string, unknown>): void;
  /** The hub this call came through (its relay carries a transfer's bytes). */
  hub: MemoryHub;
}

/** What an agent does for one op: the result (any shape: the hub checks it) or a throw. */
export type Behaviour = (params: Record<string, unknown>, ctx: HandlerContext) => unknown;

type Outcome = { ok: true; result: unknown } | { ok: false; error: SeedwireError };

interface Running {
  controller: AbortController;
  outcome: Promise<Outcome>;
  progress: Set<(data: Record<string, unknown>) => void>;
}

// ---- behaviours -----------------------------------------------------------------------------

export function answer(result: unknown): Behaviour {
  return () => result;
}

export function fail(code: ErrorCode, message = `scripted failure (${code})`): Behaviour {
  return () => {
    throw new SeedwireError(code, message);
  };
}

/** Runs until the controller cancels the call; `onStart` is told when it starts. */
export function hang(onStart?: () => void): Behaviour {
  return (_params, ctx) =>
    new Promise((_resolve, reject) => {
      onStart?.();
      const stop = (): void => reject(new SeedwireError('SEEDWIRE_CANCELED', 'canceled by the controller'));
      if (ctx.signal.aborted) stop();
      ctx.signal.addEventListener('abort', stop, { once: true });
    });
}

/**
 * Does the op (the outcome goes into the agent's ledger), but the link drops before the answer
 * arrives; the agent redials once the controller has seen the drop.
 */
export function dropLinkAfter(behaviour: Behaviour): Behaviour {
  return async (params, ctx) => {
    const result = await behaviour(params, ctx);
    ctx.hub.disconnect(ctx.agent.id);
    queueMicrotask(() => ctx.hub.connect(ctx.agent.id));
    return result;
  };
}

// ---- agents ---------------------------------------------------------------------------------

export function makeFacts(overrides: Partial<Facts> = {}): Facts {
  return {
    hostname: 'host',
    datacenter: 'dc1',
    mysqlConfigured: true,
    mysqlRunning: false,
    mysqlPort: 3306,
    datadir: '/var/lib/mysql',
    datadirBytes: 0,
    datadirFreeBytes: 1024 ** 4,
    incompleteSeed: null,
    snapshotBackend: 'none',
    snapshots: [],
    mounted: null,
    backupTool: null,
    customCommands: [],
    collectedAt: new Date(0).toISOString(),
    ...overrides,
  };
}

export class ScriptedAgent {
  readonly behaviours = new Map<string, Behaviour>();
  /** Every handler run (not ledger answers), in order. */
  readonly runs: Array<{ op: string; callId: string; params: Record<string, unknown> }> = [];
  /** Links up (a hub may route calls to it). */
  connected = true;
  /** What its hello offered (none by default: its seeds hash with SHA-256). */
  capabilities: string[] = [];
  private readonly ledger = new Map<string, Running>();

  constructor(
    readonly id: string,
    /** null: the agent has not reported its facts yet. */
    public facts: Facts | null,
  ) {}

  on(op: OpName, behaviour: Behaviour): this {
    this.behaviours.set(op, behaviour);
    return this;
  }

  /** The ledger: a known call id attaches to its (running or finished) outcome. */
  receive(hub: MemoryHub, callId: string, op: string, params: Record<string, unknown>, onProgress: ((data: Record<string, unknown>) => void) | null): Running {
    const known = this.ledger.get(callId);
    if (known) {
      if (onProgress) known.progress.add(onProgress);
      return known;
    }
    const controller = new AbortController();
    const progress = new Set<(data: Record<string, unknown>) => void>(onProgress ? [onProgress] : []);
    const behaviour = this.behaviours.get(op);
    this.runs.push({ op, callId, params });
    const ctx: HandlerContext = { agent: this, callId, signal: controller.signal, hub, progress: (data) => progress.forEach((listener) => listener(data)) };
    const outcome = (async (): Promise<Outcome> => {
      await Promise.resolve(); // like a real agent: the call is registered before its handler runs
      try {
        if (!behaviour) throw new SeedwireError('SEEDWIRE_OP_UNKNOWN', `scripted agent ${this.id} has no behaviour for ${op}`);
        return { ok: true, result: await behaviour(params, ctx) };
      } catch (error) {
        return { ok: false, error: toSeedwireError(error) };
      }
    })();
    const running: Running = { controller, outcome, progress };
    this.ledger.set(callId, running);
    return running;
  }

  cancel(callId: string, reason: SeedwireError): void {
    this.ledger.get(callId)?.controller.abort(reason);
  }

  /** Ops run so far (handler runs, not ledger answers). */
  ops(): string[] {
    return this.runs.map((r) => r.op);
  }
}

// ---- relay ----------------------------------------------------------------------------------

interface Route {
  from: string;
  to: string;
  limit: number;
  relayed: number;
  waiters: Set<{ atLeast: number; resolve: (limit: number) => void; reject: (error: SeedwireError) => void }>;
  onData: ((bytes: number, end: boolean) => void) | null;
}

export class MemoryRelay implements StreamRelay {
  private next = 1;
  private readonly routes = new Map<number, Route>();
  readonly opened: Array<{ stream: number; from: string; to: string }> = [];

  allocate(): number {
    return this.next++;
  }

  /** In memory there are no data connections: the stand-in's streams take the control path (no tokens). */
  open(stream: number, route: { from: string; to: string }): null {
    if (this.routes.has(stream)) throw new SeedwireError('SEEDWIRE_CONFLICT', `stream ${stream} is already open`);
    this.routes.set(stream, { ...route, limit: 0, relayed: 0, waiters: new Set(), onData: null });
    this.opened.push({ stream, ...route });
    return null;
  }

  /** As the real relay: waiters for credit on a closed stream are rejected. */
  close(stream: number): void {
    const route = this.routes.get(stream);
    this.routes.delete(stream);
    for (const waiter of route?.waiters ?? []) waiter.reject(new SeedwireError('SEEDWIRE_CANCELED', `stream ${stream} closed`));
    route?.waiters.clear();
  }

  creditLimit(stream: number): number {
    return this.routes.get(stream)?.limit ?? 0;
  }

  waitForCredit(stream: number, atLeast: number, signal?: AbortSignal): Promise<number> {
    const route = this.routes.get(stream);
    if (!route) return Promise.reject(new SeedwireError('SEEDWIRE_NOT_FOUND', `stream ${stream} is not open`));
    if (route.limit > atLeast) return Promise.resolve(route.limit);
    return new Promise((resolve, reject) => {
      const waiter = {
        atLeast,
        resolve: (limit: number) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(limit);
        },
        reject: (error: SeedwireError) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      const onAbort = (): void => {
        route.waiters.delete(waiter);
        reject(new SeedwireError('SEEDWIRE_CANCELED', 'wait for credit aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      route.waiters.add(waiter);
    });
  }

  bytesRelayed(stream: number): number {
    return this.routes.get(stream)?.relayed ?? 0;
  }

  /** The receiver's side: grant credit up to `limit`. */
  grant(stream: number, limit: number): void {
    const route = this.routes.get(stream);
    if (!route) return;
    route.limit = Math.max(route.limit, limit);
    for (const waiter of [...route.waiters]) {
      if (route.limit > waiter.atLeast) {
        route.waiters.delete(waiter);
        waiter.resolve(route.limit);
      }
    }
  }

  /** The receiver's side: where the stream's bytes go. */
  receive(stream: number, onData: (bytes: number, end: boolean) => void): void {
    const route = this.routes.get(stream);
    if (!route) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `stream ${stream} is not open`);
    route.onData = onData;
  }

  /** The sender's side: `bytes` more (never past the credit), `end` on the last. */
  send(stream: number, bytes: number, end = false): void {
    const route = this.routes.get(stream);
    if (!route) throw new SeedwireError('SEEDWIRE_DISCONNECTED', `stream ${stream} is closed`);
    if (route.relayed + bytes > route.limit) throw new Error(`memory relay: sender exceeded its credit on stream ${stream}`);
    route.relayed += bytes;
    route.onData?.(bytes, end);
  }
}

/** A seed's transfer on scripted agents: a target that commits what arrives and a source that sends within credit. */
export interface ScriptedTransfer {
  /** The target's committed offset, kept across attempts (its resume point). */
  committed: number;
  /** Offsets the sender was asked to start from, one per attempt. */
  sendOffsets: number[];
  /** A seed over several lanes: each lane's committed offset, and the offsets its sender started from. */
  lanes: Map<number, { committed: number; sendOffsets: number[] }>;
  receive: Behaviour;
  send: Behaviour;
}

export interface TransferScript {
  bytes: number;
  files: number;
  chunk?: number;
  /** What the sender reports (a backup seed's tool, binlog coordinates, another digest). */
  sent?: Partial<SendSummary>;
  /**
   * Per attempt (1, 2, ...): stop sending at byte `at`, then 'drop' (the link fails:
   * SEEDWIRE_DISCONNECTED) or 'hang' (until cancelled). null: send everything.
   */
  interrupt?: (attempt: number) => { at: number; then: 'drop' | 'hang' } | null;
  /** A seed over several lanes: per lane and that lane's attempt (1, 2, ...), as `interrupt`. */
  interruptLane?: (lane: number, attempt: number) => { at: number; then: 'drop' | 'hang' } | null;
}

/** The lane a seed-receive or seed-send call is for (null: a one-lane seed). */
function laneOf(params: Record<string, unknown>): { index: number; count: number } | null {
  const lane = params['lane'] as { index: number; count: number } | undefined;
  return lane ?? null;
}

export function scriptedTransfer(options: TransferScript): ScriptedTransfer {
  const chunk = options.chunk ?? 64 * 1024;
  const window = 4 * chunk;
  const summary = { files: options.files, bytes: options.bytes, digest: 'd'.repeat(64) };
  // Each lane of n carries bytes/n (rounded up) and lane 0 names the files; both sides agree.
  const laneSummary = (lane: { index: number; count: number }): SendSummary => ({ files: lane.index === 0 ? options.files : 0, bytes: Math.ceil(options.bytes / lane.count), digest: `${lane.index}`.padEnd(64, 'e') });
  const laneState = (index: number): { committed: number; sendOffsets: number[] } => {
    let state = transfer.lanes.get(index);
    if (!state) {
      state = { committed: 0, sendOffsets: [] };
      transfer.lanes.set(index, state);
    }
    return state;
  };
  const transfer: ScriptedTransfer = {
    committed: 0,
    sendOffsets: [],
    lanes: new Map(),
    receive: (params, ctx) => {
      const stream = Number(params['stream']);
      const lane = laneOf(params);
      const state = lane ? laneState(lane.index) : transfer;
      const offset = params['resume'] === true ? state.committed : 0;
      state.committed = offset;
      return new Promise((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(toSeedwireError(ctx.signal.reason)), { once: true });
        ctx.hub.relay.receive(stream, (bytes, end) => {
          state.committed += bytes;
          ctx.progress({ committed: state.committed, received: state.committed });
          ctx.hub.relay.grant(stream, state.committed + window);
          if (end) resolve(lane ? laneSummary(lane) : summary);
        });
        ctx.progress({ ready: true, offset });
        ctx.hub.relay.grant(stream, offset + window);
      });
    },
    send: async (params, ctx) => {
      const stream = Number(params['stream']);
      let pos = Number(params['offset']);
      const lane = laneOf(params);
      const state = lane ? laneState(lane.index) : transfer;
      state.sendOffsets.push(pos);
      const interrupt = (lane ? options.interruptLane?.(lane.index, state.sendOffsets.length) : options.interrupt?.(transfer.sendOffsets.length)) ?? null;
      const total = lane ? laneSummary(lane).bytes : options.bytes;
      const end = interrupt ? Math.min(interrupt.at, total) : total;
      while (pos < end) {
        const limit = await ctx.hub.relay.waitForCredit(stream, pos, ctx.signal);
        const n = Math.min(chunk, end - pos, limit - pos);
        ctx.hub.relay.send(stream, n);
        pos += n;
      }
      if (interrupt?.then === 'drop') throw new SeedwireError('SEEDWIRE_DISCONNECTED', `scripted link drop at byte ${pos}`);
      if (interrupt?.then === 'hang') return hang()(params, ctx);
      ctx.hub.relay.send(stream, 0, true);
      return { ...(lane ? laneSummary(lane) : summary), ...options.sent };
    },
  };
  return transfer;
}

// ---- the hub --------------------------------------------------------------------------------

interface PendingCall {
  agentId: string;
  callId: string;
  onDisconnect: 'wait' | 'fail';
  /** Link state changed (or the hub closed): re-evaluate. */
  poke: () => void;
}

export interface CallRecord {
  agentId: string;
  op: string;
  callId: string;
  params: Record<string, unknown>;
}

export class MemoryHub implements AgentHub {
  readonly relay = new MemoryRelay();
  /** Every call the controller made through this hub (ledger answers included), in order. */
  readonly calls = new Waitable<CallRecord>();
  private readonly scripted = new Map<string, ScriptedAgent>();
  private readonly listeners = new Set<(event: HubEvent) => void>();
  private readonly pending = new Set<PendingCall>();
  private readonly agentWaiters = new Set<{ agentId: string; wake: () => void }>();
  private closed = false;

  constructor(agents: ScriptedAgent[]) {
    for (const agent of agents) this.scripted.set(agent.id, agent);
  }

  async call<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, options: CallOptions<N> = {}): Promise<CallOutcome<OpResultOf<N>>> {
    const started = performance.now();
    const raw: Record<string, unknown> = { ...params };
    const progress = options.onProgress ? checkedProgress(op, options.onProgress, () => undefined) : null;
    const result = await this.deliver(agentId, op, raw, options, progress);
    return { result: checkResult(agentId, op, result), exitCode: null, durationMs: performance.now() - started };
  }

  isConnected(agentId: string): boolean {
    return this.scripted.get(agentId)?.connected ?? false;
  }

  async agent(agentId: string): Promise<AgentInfo | null> {
    return this.info(agentId);
  }

  async agents(): Promise<AgentInfo[]> {
    return [...this.scripted.keys()].sort().map((id) => this.info(id)!);
  }

  private info(agentId: string): AgentInfo | null {
    const agent = this.scripted.get(agentId);
    if (!agent) return null;
    return { id: agentId, hostname: agent.facts?.hostname ?? agentId, datacenter: agent.facts?.datacenter ?? null, connected: agent.connected, connectedAt: null, lastSeenAt: null, version: 'test', capabilities: [...agent.capabilities], clockSkewMs: 0 };
  }

  facts(agentId: string): Facts | null {
    return this.scripted.get(agentId)?.facts ?? null;
  }

  waitForAgent(agentId: string, signal?: AbortSignal): Promise<void> {
    if (this.isConnected(agentId)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        agentId,
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.agentWaiters.delete(waiter);
        reject(new SeedwireError('SEEDWIRE_CANCELED', 'wait for agent aborted'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.agentWaiters.add(waiter);
    });
  }

  on(listener: (event: HubEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** One controller in memory: there is nowhere to move an agent to. */
  move(): boolean {
    return false;
  }

  /** The agent's link drops: bulk calls ('fail') end with SEEDWIRE_DISCONNECTED and the agent stops them. */
  disconnect(agentId: string): void {
    const agent = this.scripted.get(agentId);
    if (!agent?.connected) return;
    agent.connected = false;
    for (const call of [...this.pending]) if (call.agentId === agentId) call.poke();
    this.emit({ type: 'agent-disconnected', agent: this.info(agentId)!, reason: 'test' });
  }

  /** The agent redials: waiting calls get their outcomes (from the agent's ledger). */
  connect(agentId: string): void {
    const agent = this.scripted.get(agentId);
    if (!agent || agent.connected) return;
    agent.connected = true;
    for (const waiter of [...this.agentWaiters]) {
      if (waiter.agentId !== agentId) continue;
      this.agentWaiters.delete(waiter);
      waiter.wake();
    }
    for (const call of [...this.pending]) if (call.agentId === agentId) call.poke();
    this.emit({ type: 'agent-connected', agent: this.info(agentId)! });
  }

  /** The controller process ends: calls still waiting reject with SEEDWIRE_SHUTTING_DOWN (the agents keep running them). */
  close(): void {
    this.closed = true;
    for (const call of [...this.pending]) call.poke();
  }

  private deliver(agentId: string, op: string, params: Record<string, unknown>, options: CallOptions<OpName>, progress: ((data: Record<string, unknown>) => void) | null): Promise<unknown> {
    const { signal } = options;
    const agent = this.scripted.get(agentId);
    if (this.closed) return Promise.reject(new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down'));
    if (!agent) return Promise.reject(new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${agentId} has ever connected`));
    if (!agent.connected) return Promise.reject(new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} is not connected`));
    if (signal?.aborted) return Promise.reject(new SeedwireError('SEEDWIRE_CANCELED', `${op} canceled before it started`));
    const callId = options.callId ?? `${agentId}.${op}.${this.calls.items.length}`;
    this.calls.push({ agentId, op, callId, params });
    const running = agent.receive(this, callId, op, params, progress);
    return new Promise((resolve, reject) => {
      let outcome: Outcome | null = null;
      const call: PendingCall = { agentId, callId, onDisconnect: options.onDisconnect ?? 'wait', poke: () => settle() };
      const finish = (fn: () => void): void => {
        this.pending.delete(call);
        signal?.removeEventListener('abort', onAbort);
        if (progress) running.progress.delete(progress);
        fn();
      };
      const settle = (): void => {
        if (!this.pending.has(call)) return;
        if (this.closed) return finish(() => reject(new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down')));
        if (!agent.connected) {
          if (call.onDisconnect === 'wait') return; // delivered after the agent redials
          const error = new SeedwireError('SEEDWIRE_DISCONNECTED', `agent ${agentId} disconnected during ${op}`);
          agent.cancel(callId, error);
          return finish(() => reject(error));
        }
        if (outcome === null) return;
        const done = outcome;
        finish(() => (done.ok ? resolve(done.result) : reject(done.error)));
      };
      const onAbort = (): void => {
        const error = new SeedwireError('SEEDWIRE_CANCELED', `${op} canceled`);
        agent.cancel(callId, error);
        finish(() => reject(error));
      };
      this.pending.add(call);
      signal?.addEventListener('abort', onAbort, { once: true });
      void running.outcome.then((o) => {
        outcome = o;
        settle();
      });
    });
  }

  private emit(event: HubEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}
