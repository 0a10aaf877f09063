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
import { createAgentSteps, throwIfStopped, type StopReason } from './agent-steps.js';
import { cleanupAfterFailure } from './cleanup.js';
import { SEED_LIMITS } from './limits.js';
import { LiveProgress } from './live-progress.js';
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

  constructor(private readonly deps: SeedDeps) {
    this.store = deps.store.seeds;
    this.throughputRecorder = new ThroughputRecorder(deps.store.throughput, deps.log.child({ component: 'throughput' }));
    this.live = new LiveProgress(
      this.store,
      (id) => this.publishInBackground(id),
      (id, error) => deps.log.warn({ err: error, seedId: id }, 'could not persist the seed progress'),
    );
    this.stageDeps = {
      hub: deps.hub,
      steps: createAgentSteps(deps.hub, deps.operations, deps.reconnectWaitMs ?? SEED_LIMITS.reconnectWaitMs),
      store: this.store,
      live: this.live,
      recorder: this.throughputRecorder,
      audit: deps.audit,
      log: deps.log,
      publish: (id) => this.publishInBackground(id),
    };
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
    try {
      plan = await runPrechecks(request, { hub: this.deps.hub, activeSeedOf: (agentId) => this.store.activeFor(agentId) });
    } catch (error) {
      const err = toSeedwireError(error, 'SEEDWIRE_PRECHECK_FAILED');
      await this.deps.audit({ actor, agentId: request.target, action: 'seed.create', params: request, outcome: 'refused', message: `${err.code}: ${err.message}` });
      throw err;
    }
    const id = `seed-${randomUUID()}`;
    await this.store.create({ id, source: request.source, target: request.target, method: plan.method, compression: request.compression ?? 'auto', effectiveCompression: plan.compression, startTarget: request.startTarget ?? true, maxBytesPerSec: request.maxBytesPerSec ?? null, lanes: plan.lanes, bytesTotal: plan.bytesTotal });
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
    } else {
      await cleanupAfterFailure(this.stageDeps, seed, null);
      await this.store.finish(id, 'aborted', { code: 'SEEDWIRE_CANCELED', message: `aborted by ${actor}` }, null);
    }
    return this.publish(id);
  }

  /** After a controller restart: pick every unfinished seed up where it stopped. */
  async resumeUnfinished(): Promise<void> {
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
    const runs = [...this.runs.values()];
    for (const run of runs) run.controller.abort('shutdown' satisfies StopReason);
    await Promise.all(runs.map((r) => r.done));
    await this.throughputRecorder.close();
    await this.publishing;
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
      await this.store.finish(id, 'succeeded', null, null);
      await this.deps.audit({ actor: `seed:${id}`, agentId: (await this.mustGet(id)).target, action: 'seed.finish', outcome: 'ok' });
      log.info('seed succeeded');
    } catch (error) {
      if (signal.aborted && signal.reason === ('shutdown' satisfies StopReason)) {
        log.info({ stage: current }, 'controller shutting down; seed will resume on restart');
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
