/**
 * The seed state machine's stage loop: makes two agents copy a MySQL datadir from `source` to
 * `target` through the controller, stage by stage, every transition persisted and audited before
 * the next step, so a controller restart resumes where it stopped.
 *
 * Stages: precheck → prepare-source → prepare-target → transfer → verify → finalize-target →
 * cleanup-source. A failure or an abort runs the cleanup of both sides (cleanup.ts). The parts:
 * prechecks.ts (refusals before anything is recorded), stages.ts (what each stage does),
 * methods/ (what differs between cold, snapshot and backup), transfer.ts (the attempt loop),
 * live-progress.ts, agent-steps.ts (every agent call of a running seed). docs/seed-flow.md.
 */
import { randomUUID } from 'node:crypto';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { createAgentSteps, isDetachedStop, throwIfStopped, type StopReason } from './agent-steps.js';
import { cleanupAfterFailure } from './cleanup.js';
import { SEED_LIMITS } from './limits.js';
import { LiveProgress } from './live-progress.js';
import { SeedLeases } from './lease.js';
import { runPrechecks, type SeedPlan, type SeedRequest } from './prechecks.js';
import { runStage, type StageDeps } from './stages.js';
import type { SeedStore } from './store.js';
import type { ThroughputData } from './throughput.js';
import { ThroughputRecorder } from './throughput-recorder.js';
import { SEED_STAGES, type SeedDeps, type SeedView, type StageName } from './types.js';

export type { SeedRequest } from './prechecks.js';

export class SeedMachine {
  readonly store: SeedStore;
  private readonly throughputRecorder: ThroughputRecorder;
  private readonly live: LiveProgress;
  private readonly stageDeps: StageDeps;
  private readonly runs = new Map<string, { controller: AbortController; done: Promise<void> }>();
  /** Publications in order: each reads the seed after the one before it was published. */
  private publishing: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Cluster mode: the seed leases of this controller; null for a single controller (it owns every seed). */
  private readonly leases: SeedLeases | null;
  private readonly timers: NodeJS.Timeout[] = [];
  private sweeping: Promise<void> = Promise.resolve();

  constructor(private readonly deps: SeedDeps) {
    this.store = deps.store.seeds;
    this.leases = deps.ownership ? new SeedLeases(this.store, deps.ownership, deps.log.child({ component: 'seed-lease' })) : null;
    const leases = this.leases;
    this.throughputRecorder = new ThroughputRecorder(deps.store.throughput, deps.log.child({ component: 'throughput' }));
    this.live = new LiveProgress(
      this.store,
      (id) => this.publishInBackground(id),
      (id, error) => deps.log.warn({ err: error, seedId: id }, 'could not persist the seed progress'),
    );
    this.stageDeps = {
      hub: deps.hub,
      steps: createAgentSteps(
        deps.hub,
        deps.operations,
        deps.reconnectWaitMs ?? SEED_LIMITS.reconnectWaitMs,
        leases ? { fence: (seedId) => this.fence(seedId), summon: (agentId) => leases.ownership.summon(agentId), summonEveryMs: leases.ownership.summonEveryMs } : null,
      ),
      store: this.store,
      live: this.live,
      recorder: this.throughputRecorder,
      audit: deps.audit,
      log: deps.log,
      publish: (id) => this.publishInBackground(id),
    };
  }

  /** The seeds this controller drives now (for the logs and tests). */
  driving(): string[] {
    return [...this.runs.keys()];
  }

  /** The seed's throughput history (samples and marks), or null when none was recorded. */
  throughput(id: string): Promise<ThroughputData | null> {
    return this.throughputRecorder.view(id);
  }

  // ---- public API --------------------------------------------------------------------------

  async get(id: string): Promise<SeedView | null> {
    const seed = await this.store.get(id);
    return seed ? this.live.withLive(seed) : null;
  }

  async list(limit = 100): Promise<SeedView[]> {
    return (await this.store.list(limit)).map((s) => this.live.withLive(s));
  }

  /** Runs the prechecks (throwing 409-class SeedwireErrors), records the seed and starts it. */
  async create(request: SeedRequest, actor = 'admin'): Promise<SeedView> {
    if (this.closed) throw new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
    let plan: SeedPlan;
    await this.summonForCreate(request);
    try {
      plan = await runPrechecks(request, { hub: this.deps.hub, activeSeedOf: (agentId) => this.store.activeFor(agentId) });
    } catch (error) {
      const err = toSeedwireError(error, 'SEEDWIRE_PRECHECK_FAILED');
      await this.deps.audit({ actor, agentId: request.target, action: 'seed.create', params: request, outcome: 'refused', message: `${err.code}: ${err.message}` });
      throw err;
    }
    const id = `seed-${randomUUID()}`;
    await this.store.create(
      { id, source: request.source, target: request.target, method: plan.method, compression: request.compression ?? 'auto', effectiveCompression: plan.compression, startTarget: request.startTarget ?? true, maxBytesPerSec: request.maxBytesPerSec ?? null, lanes: plan.lanes, bytesTotal: plan.bytesTotal },
      this.leases?.newLease() ?? null,
    );
    await this.store.endStage(id, 'precheck', 'succeeded', plan.summary);
    await this.deps.audit({ actor, agentId: request.target, action: 'seed.create', params: { id, ...request, method: plan.method, compression: plan.compression, lanes: plan.lanes }, outcome: 'started', message: plan.summary });
    this.start(id, false);
    return this.publish(id);
  }

  async abort(id: string, actor = 'admin'): Promise<SeedView> {
    const seed = await this.store.get(id);
    if (!seed) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${id}`);
    if (seed.state !== 'running' && seed.state !== 'pending') {
      throw new SeedwireError('SEEDWIRE_CONFLICT', `seed ${id} is already ${seed.state}`);
    }
    await this.store.requestAbort(id);
    await this.deps.audit({ actor, agentId: seed.target, action: 'seed.abort', params: { id }, outcome: 'started' });
    const run = this.runs.get(id);
    if (run) {
      run.controller.abort('abort' satisfies StopReason);
      await run.done;
    } else if (this.leases) {
      // Another controller may drive it: it sees the request at its next step or renewal. Only
      // when nobody holds the lease does this controller take it and run the abort path itself.
      if (await this.adopt(id, 'abort')) await this.runs.get(id)?.done;
    } else {
      await cleanupAfterFailure(this.stageDeps, seed, null);
      await this.store.finish(id, 'aborted', { code: 'SEEDWIRE_CANCELED', message: `aborted by ${actor}` }, null);
    }
    return this.publish(id);
  }

  /**
   * After a controller restart: pick every unfinished seed up where it stopped. In cluster mode
   * only the seeds it can claim (unowned, its own, or whose owner's lease expired), and from then
   * on it renews its leases and adopts seeds whose owner died.
   */
  async resumeUnfinished(): Promise<void> {
    if (this.leases) {
      await this.startLeases(this.leases);
      return;
    }
    for (const seed of await this.store.listUnfinished()) {
      if (this.closed) return;
      this.deps.log.info({ seedId: seed.id, stage: seed.stage }, 'resuming seed after restart');
      await this.deps.audit({ actor: 'controller', agentId: seed.target, action: 'seed.resume', params: { id: seed.id, stage: seed.stage }, outcome: 'started' });
      this.start(seed.id, true);
    }
  }

  /** Stops driving seeds without failing them: they stay `running` and resume on the next start. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    const runs = [...this.runs.values()];
    for (const run of runs) run.controller.abort('shutdown' satisfies StopReason);
    await Promise.all(runs.map((r) => r.done));
    await this.sweeping;
    // Cluster mode: another controller adopts them now rather than after their leases expire.
    if (runs.length > 0) await this.leases?.releaseAll();
    await this.throughputRecorder.close();
    await this.publishing;
  }

  // ---- leases (cluster mode) ---------------------------------------------------------------

  private async startLeases(leases: SeedLeases): Promise<void> {
    if (this.closed) return;
    const { leaseMs, sweepMs } = leases.ownership;
    let renewing = false;
    const renew = setInterval(() => {
      if (renewing) return; // a slow store: one renewal at a time
      renewing = true;
      void this.renewLeases(leases)
        .catch((error: unknown) => this.deps.log.warn({ err: error }, 'seed lease renewal failed'))
        .finally(() => {
          renewing = false;
        });
    }, Math.max(50, Math.floor(leaseMs / 3)));
    // One seed per sweep, so several live controllers share a dead one's seeds between them.
    const sweep = setInterval(() => {
      this.sweeping = this.sweeping.then(() => this.sweepOnce(leases));
    }, sweepMs);
    for (const timer of [renew, sweep]) timer.unref();
    this.timers.push(renew, sweep);
    try {
      for (const id of await leases.claimable()) {
        if (this.closed) return;
        await this.adopt(id, 'start');
      }
    } catch (error) {
      // The store is not answering: the sweeps take the seeds up once it does.
      this.deps.log.warn({ err: error }, 'could not claim the unfinished seeds at start');
    }
  }

  /** Renews every lease in one statement; stops the runs whose lease is gone, aborts those asked to. */
  private async renewLeases(leases: SeedLeases): Promise<void> {
    const held = await leases.renewAll(); // never rejects
    if (held === null) {
      if (!leases.stillValid()) for (const id of this.runs.keys()) this.fenceRun(id, 'its lease could not be renewed in time (store unreachable)');
      return;
    }
    const heldIds = new Map(held.map((lease) => [lease.id, lease.abortRequested]));
    for (const [id, run] of this.runs) {
      const abortRequested = heldIds.get(id);
      if (abortRequested === undefined) {
        // A seed that just finished is no longer renewed either; only a lease someone else took fences.
        if (!(await leases.stillOwner(id).catch(() => true))) this.fenceRun(id, 'another controller took its lease');
      } else if (abortRequested && !run.controller.signal.aborted) {
        run.controller.abort('abort' satisfies StopReason);
      }
    }
  }

  /** Adopts one seed whose owner's lease expired, if there is one. Never rejects. */
  private async sweepOnce(leases: SeedLeases): Promise<void> {
    if (this.closed) return;
    try {
      for (const id of await leases.claimable()) {
        if (this.runs.has(id)) continue;
        if (await this.adopt(id, 'sweep')) return;
      }
    } catch (error) {
      this.deps.log.warn({ err: error }, 'seed lease sweep failed');
    }
  }

  /**
   * Claims a seed's lease and, when it wins, starts driving it from its persisted stage (the
   * transfer resumes from the target's committed offsets). Audited as `seed.adopt` when it was
   * another controller's, `seed.resume` when it was this one's (a restart) or nobody's.
   */
  private async adopt(id: string, why: 'start' | 'sweep' | 'abort'): Promise<boolean> {
    const leases = this.leases!;
    if (this.closed || this.runs.has(id)) return false;
    const before = await leases.claim(id);
    if (!before) return false;
    const seed = await this.mustGet(id);
    const holder = leases.holder();
    if (before.owner !== null && before.owner !== holder.owner) {
      this.deps.log.info({ seedId: id, stage: seed.stage, previousOwner: before.owner, previousOwnerUrl: before.ownerUrl, why }, 'adopting seed whose owner lost its lease');
      await this.deps.audit({
        actor: 'controller',
        agentId: seed.target,
        action: 'seed.adopt',
        params: { id, stage: seed.stage, previousOwner: before.owner, previousOwnerUrl: before.ownerUrl, owner: holder.owner, ownerUrl: holder.ownerUrl },
        outcome: 'started',
      });
    } else {
      this.deps.log.info({ seedId: id, stage: seed.stage }, 'resuming seed after restart');
      await this.deps.audit({ actor: 'controller', agentId: seed.target, action: 'seed.resume', params: { id, stage: seed.stage }, outcome: 'started' });
    }
    this.start(id, true);
    return true;
  }

  /** Stops driving a seed this controller lost, without touching its agents (no cleanup, no cancels of waiting steps). */
  private fenceRun(id: string, why: string): void {
    const run = this.runs.get(id);
    if (!run || run.controller.signal.aborted) return;
    this.deps.log.warn({ seedId: id, why }, 'lost the seed lease; no longer driving the seed');
    run.controller.abort('fenced' satisfies StopReason);
  }

  /** The fencing check before each stage and each agent step; throws when the lease is gone. */
  private async fence(id: string): Promise<void> {
    if (!this.leases) return;
    const { held, abortRequested } = await this.leases.check(id);
    const run = this.runs.get(id);
    if (!held) {
      this.fenceRun(id, 'another controller holds its lease');
      throw new SeedwireError('SEEDWIRE_CANCELED', 'fenced: another controller holds the seed lease');
    }
    // An abort asked for through another controller's API.
    if (abortRequested && run && !run.controller.signal.aborted) run.controller.abort('abort' satisfies StopReason);
  }

  /**
   * Cluster mode: a seed asked for here is driven here, so its agents must be here too. Agents
   * held by other controllers are asked over, and their arrival awaited (a while) before the
   * prechecks, which refuse an agent that did not come.
   */
  private async summonForCreate(request: SeedRequest): Promise<void> {
    const ownership = this.leases?.ownership;
    if (!ownership) return;
    const missing = [...new Set([request.source, request.target])].filter((agentId) => !this.deps.hub.isConnected(agentId));
    if (missing.length === 0) return;
    const signal = AbortSignal.timeout(ownership.summonWaitMs);
    await Promise.all(
      missing.map(async (agentId) => {
        try {
          await this.stageDeps.steps.waitForAgent(agentId, signal, ownership.summonWaitMs);
          await this.waitForFacts(agentId, signal); // the prechecks read them; they follow the welcome
        } catch {
          // not here in time: the prechecks say which agent is missing
        }
      }),
    );
  }

  /** Resolves once the agent has reported its facts to this controller; rejects when `signal` aborts. */
  private waitForFacts(agentId: string, signal: AbortSignal): Promise<void> {
    const { hub } = this.deps;
    if (hub.facts(agentId) !== null) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        off();
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        done();
        reject(new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} reported no facts in time`));
      };
      const off = hub.on((event) => {
        if (event.type === 'facts' && event.agentId === agentId) {
          done();
          resolve();
        }
      });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ---- the stage loop ----------------------------------------------------------------------

  /** `restarted`: picked up after a controller restart (marked on the throughput chart). */
  private start(id: string, restarted: boolean): void {
    if (this.runs.has(id)) return;
    const controller = new AbortController();
    const done = (async () => {
      const seed = await this.store.get(id);
      const initialBytes = seed?.bytesDone ?? 0;
      this.live.begin(id, initialBytes);
      await this.throughputRecorder.track(id, { stage: seed?.stage ?? null, attempt: seed?.attempts ?? 0 }, () => this.live.chartBytes(id, initialBytes));
      await this.run(id, controller.signal, restarted);
    })()
      .catch((error: unknown) => this.deps.log.error({ err: error, seedId: id }, 'seed run failed outside its stages'))
      .finally(async () => {
        await this.throughputRecorder.untrack(id);
        this.runs.delete(id);
        this.live.forget(id);
      });
    this.runs.set(id, { controller, done });
  }

  /** `restarted`: the chart marks the restart after the stage the seed resumes in. */
  private async run(id: string, signal: AbortSignal, restarted: boolean): Promise<void> {
    const log = this.deps.log.child({ seedId: id });
    let current: StageName | null = null;
    let restartUnmarked = restarted;
    const markRestart = (): void => {
      if (restartUnmarked) this.throughputRecorder.markRestart(id);
      restartUnmarked = false;
    };
    try {
      if ((await this.store.internals(id)).abortRequested) throw new SeedwireError('SEEDWIRE_CANCELED', 'aborted');
      for (const stage of SEED_STAGES) {
        const seed = await this.mustGet(id);
        const state = seed.stages.find((s) => s.name === stage)?.state;
        if (state === 'succeeded' || state === 'skipped') continue;
        current = stage;
        throwIfStopped(signal);
        await this.fence(id);
        await this.store.startStage(id, stage);
        this.throughputRecorder.markStage(id, stage);
        markRestart();
        this.publishInBackground(id);
        await this.deps.audit({ actor: `seed:${id}`, agentId: agentOfStage(seed, stage), action: `seed.stage.${stage}`, outcome: 'started' });
        const message = await runStage(this.stageDeps, await this.mustGet(id), stage, signal);
        await this.store.endStage(id, stage, 'succeeded', message);
        await this.deps.audit({ actor: `seed:${id}`, agentId: agentOfStage(seed, stage), action: `seed.stage.${stage}`, outcome: 'ok', message });
        this.publishInBackground(id);
      }
      markRestart();
      await this.fence(id);
      await this.store.finish(id, 'succeeded', null, null);
      await this.deps.audit({ actor: `seed:${id}`, agentId: (await this.mustGet(id)).target, action: 'seed.finish', outcome: 'ok' });
      log.info('seed succeeded');
    } catch (error) {
      if (isDetachedStop(signal)) {
        if (signal.reason === ('fenced' satisfies StopReason)) log.warn({ stage: current }, 'seed fenced: another controller drives it now');
        else log.info({ stage: current }, 'controller shutting down; seed will resume on restart');
        return;
      }
      markRestart();
      const aborted = (signal.aborted && signal.reason === ('abort' satisfies StopReason)) || (await this.store.internals(id)).abortRequested;
      const err = aborted ? new SeedwireError('SEEDWIRE_CANCELED', 'aborted by request') : toSeedwireError(error);
      log.warn({ stage: current, code: err.code, err: err.message }, aborted ? 'seed aborted' : 'seed failed');
      if (current) await this.store.endStage(id, current, 'failed', `${err.code}: ${err.message}`);
      this.publishInBackground(id);
      await cleanupAfterFailure(this.stageDeps, await this.mustGet(id), current === 'prepare-target' ? err.code : null);
      await this.store.finish(id, aborted ? 'aborted' : 'failed', { code: err.code, message: err.message }, null);
      await this.deps.audit({ actor: `seed:${id}`, agentId: (await this.mustGet(id)).target, action: 'seed.finish', outcome: aborted ? 'aborted' : 'failed', message: `${err.code}: ${err.message}` });
    } finally {
      this.publishInBackground(id);
    }
  }

  private async mustGet(id: string): Promise<SeedView> {
    const seed = await this.store.get(id);
    if (!seed) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${id}`);
    return seed;
  }

  /** Reads the seed and publishes it, after every publication asked for before. */
  private publish(id: string): Promise<SeedView> {
    const published = this.publishing.then(async () => {
      const seed = await this.get(id);
      if (!seed) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${id}`);
      this.deps.bus.publish('seed', seed);
      return seed;
    });
    this.publishing = published.catch(() => undefined);
    return published;
  }

  private publishInBackground(id: string): void {
    this.publish(id).catch((error: unknown) => this.deps.log.warn({ err: error, seedId: id }, 'could not publish the seed'));
  }
}

function agentOfStage(seed: SeedView, stage: StageName): string {
  return stage === 'prepare-source' || stage === 'cleanup-source' ? seed.source : seed.target;
}
