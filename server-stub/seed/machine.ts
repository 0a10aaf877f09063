/**
 * The seed state machine: makes two agents copy a MySQL datadir from `source` to `target`
 * through the controller, stage by stage, every transition persisted and audited before the
 * next step, so a controller restart resumes where it stopped.
 *
 * Stages: precheck → prepare-source → prepare-target → transfer → verify → finalize-target →
 * cleanup-source. A failure or an abort runs the cleanup of both sides: the target, if this seed
 * emptied it, keeps its incomplete marker (it never looks valid); if not, it is left untouched.
 */
import { randomUUID } from 'node:crypto';
import { SeedwireError, toSeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { Facts } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import type { CallOutcome } from '../hub/types.js';
import { estimateEta, RateMeter } from './progress.js';
import type { OpName, OpParamsInput, OpResultOf, SendSummary, TransferSummary } from '../../shared/ops.js';
import { SeedStore } from './store.js';
import type { ThroughputData } from './throughput.js';
import { ThroughputRecorder } from './throughput-recorder.js';
import { SEED_STAGES, type Compression, type SeedDeps, type SeedMethod, type SeedView, type StageName } from './types.js';

export interface SeedRequest {
  source: string;
  target: string;
  method?: SeedMethod | undefined;
  compression?: Compression | 'auto' | undefined;
  startTarget?: boolean | undefined;
  maxBytesPerSec?: number | undefined;
}

/** Extra room required on the target beyond the source's size. */
const SPACE_MARGIN_RATIO = 0.05;
const SPACE_MARGIN_BYTES = 64 * 1024 * 1024;
/** Transfer attempts in a row that make no progress before the seed gives up. */
const MAX_FRUITLESS_ATTEMPTS = 5;
const LINK_ERRORS: ReadonlySet<ErrorCode> = new Set(['SEEDWIRE_DISCONNECTED', 'SEEDWIRE_AGENT_OFFLINE', 'SEEDWIRE_LOST']);
/** How seed-prepare-target refuses before it deletes anything: nothing of the target to clean up. */
const REFUSALS_BEFORE_DELETE: ReadonlySet<ErrorCode> = new Set(['SEEDWIRE_OP_REFUSED', 'SEEDWIRE_NO_SPACE']);

interface LiveProgress {
  rate: RateMeter;
  bytesDone: number;
  /** The receiver's offset (ahead of bytesDone, which moves in commit steps): what the throughput chart samples. */
  received: number | null;
  lastPublishAt: number;
  lastPersistAt: number;
}

/** Why a run stopped early: the seed's own abort, or the controller shutting down (resume later). */
type StopReason = 'abort' | 'shutdown';

export class SeedMachine {
  readonly store: SeedStore;
  private readonly throughputRecorder: ThroughputRecorder;
  private readonly runs = new Map<string, { controller: AbortController; done: Promise<void> }>();
  private readonly live = new Map<string, LiveProgress>();
  private closed = false;

  constructor(private readonly deps: SeedDeps) {
    this.store = new SeedStore(deps.db);
    this.throughputRecorder = new ThroughputRecorder(deps.db, deps.log.child({ component: 'throughput' }));
  }

  /** The seed's throughput history (samples and marks), or null when none was recorded. */
  throughput(id: string): ThroughputData | null {
    return this.throughputRecorder.view(id);
  }

  // ---- public API --------------------------------------------------------------------------

  get(id: string): SeedView | null {
    const seed = this.store.get(id);
    return seed ? this.withLive(seed) : null;
  }

  list(limit = 100): SeedView[] {
    return this.store.list(limit).map((s) => this.withLive(s));
  }

  /** Runs the prechecks (throwing 409-class SeedwireErrors), records the seed and starts it. */
  async create(request: SeedRequest, actor = 'admin'): Promise<SeedView> {
    if (this.closed) throw new SeedwireError('SEEDWIRE_SHUTTING_DOWN', 'the controller is shutting down');
    let plan: Awaited<ReturnType<SeedMachine['precheck']>>;
    try {
      plan = await this.precheck(request);
    } catch (error) {
      const err = toSeedwireError(error, 'SEEDWIRE_PRECHECK_FAILED');
      this.deps.audit({ actor, agentId: request.target, action: 'seed.create', params: request, outcome: 'refused', message: `${err.code}: ${err.message}` });
      throw err;
    }
    const id = `seed-${randomUUID()}`;
    this.store.create({ id, source: request.source, target: request.target, method: plan.method, compression: request.compression ?? 'auto', effectiveCompression: plan.compression, startTarget: request.startTarget ?? true, maxBytesPerSec: request.maxBytesPerSec ?? null, bytesTotal: plan.bytesTotal });
    this.store.endStage(id, 'precheck', 'succeeded', plan.summary);
    this.deps.audit({ actor, agentId: request.target, action: 'seed.create', params: { id, ...request, method: plan.method, compression: plan.compression }, outcome: 'started', message: plan.summary });
    this.start(id);
    return this.publish(id);
  }

  async abort(id: string, actor = 'admin'): Promise<SeedView> {
    const seed = this.store.get(id);
    if (!seed) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${id}`);
    if (seed.state !== 'running' && seed.state !== 'pending') {
      throw new SeedwireError('SEEDWIRE_CONFLICT', `seed ${id} is already ${seed.state}`);
    }
    this.store.requestAbort(id);
    this.deps.audit({ actor, agentId: seed.target, action: 'seed.abort', params: { id }, outcome: 'started' });
    const run = this.runs.get(id);
    if (run) {
      run.controller.abort('abort' satisfies StopReason);
      await run.done;
    } else {
      await this.cleanupAfterFailure(id, new AbortController().signal);
      this.store.finish(id, 'aborted', { code: 'SEEDWIRE_CANCELED', message: `aborted by ${actor}` }, null);
    }
    return this.publish(id);
  }

  /** After a controller restart: pick every unfinished seed up where it stopped. */
  resumeUnfinished(): void {
    for (const seed of this.store.listUnfinished()) {
      this.deps.log.info({ seedId: seed.id, stage: seed.stage }, 'resuming seed after restart');
      this.deps.audit({ actor: 'controller', agentId: seed.target, action: 'seed.resume', params: { id: seed.id, stage: seed.stage }, outcome: 'started' });
      this.start(seed.id);
      this.throughputRecorder.markRestart(seed.id);
    }
  }

  /** Stops driving seeds without failing them: they stay `running` and resume on the next start. */
  async close(): Promise<void> {
    this.closed = true;
    const runs = [...this.runs.values()];
    for (const run of runs) run.controller.abort('shutdown' satisfies StopReason);
    await Promise.all(runs.map((r) => r.done));
    this.throughputRecorder.close();
  }

  // ---- the run -----------------------------------------------------------------------------

  private start(id: string): void {
    if (this.runs.has(id)) return;
    const controller = new AbortController();
    const seed = this.store.get(id);
    const initialBytes = seed?.bytesDone ?? 0;
    this.throughputRecorder.track(id, { stage: seed?.stage ?? null, attempt: seed?.attempts ?? 0 }, () => {
      const live = this.live.get(id);
      return live ? Math.max(live.bytesDone, live.received ?? 0) : initialBytes;
    });
    const done = this.run(id, controller.signal).finally(() => {
      this.throughputRecorder.untrack(id);
      this.runs.delete(id);
      this.live.delete(id);
    });
    this.runs.set(id, { controller, done });
  }

  private async run(id: string, signal: AbortSignal): Promise<void> {
    const log = this.deps.log.child({ seedId: id });
    let current: StageName | null = null;
    try {
      if (this.store.internals(id).abortRequested) throw new SeedwireError('SEEDWIRE_CANCELED', 'aborted');
      for (const stage of SEED_STAGES) {
        const seed = this.mustGet(id);
        const state = seed.stages.find((s) => s.name === stage)?.state;
        if (state === 'succeeded' || state === 'skipped') continue;
        current = stage;
        this.throwIfStopped(signal);
        this.store.startStage(id, stage);
        this.throughputRecorder.markStage(id, stage);
        this.publish(id);
        this.deps.audit({ actor: `seed:${id}`, agentId: this.agentOfStage(seed, stage), action: `seed.stage.${stage}`, outcome: 'started' });
        const message = await this.runStage(id, stage, signal);
        this.store.endStage(id, stage, 'succeeded', message);
        this.deps.audit({ actor: `seed:${id}`, agentId: this.agentOfStage(seed, stage), action: `seed.stage.${stage}`, outcome: 'ok', message });
        this.publish(id);
      }
      this.store.finish(id, 'succeeded', null, null);
      this.deps.audit({ actor: `seed:${id}`, agentId: this.mustGet(id).target, action: 'seed.finish', outcome: 'ok' });
      log.info('seed succeeded');
    } catch (error) {
      if (signal.aborted && signal.reason === ('shutdown' satisfies StopReason)) {
        log.info({ stage: current }, 'controller shutting down; seed will resume on restart');
        return;
      }
      const aborted = (signal.aborted && signal.reason === ('abort' satisfies StopReason)) || this.store.internals(id).abortRequested;
      const err = aborted ? new SeedwireError('SEEDWIRE_CANCELED', 'aborted by request') : toSeedwireError(error);
      log.warn({ stage: current, code: err.code, err: err.message }, aborted ? 'seed aborted' : 'seed failed');
      if (current) this.store.endStage(id, current, 'failed', `${err.code}: ${err.message}`);
      this.publish(id);
      // Cleanup must run even though the run's own signal is aborted.
      await this.cleanupAfterFailure(id, new AbortController().signal, current === 'prepare-target' ? err.code : null);
      this.store.finish(id, aborted ? 'aborted' : 'failed', { code: err.code, message: err.message }, null);
      this.deps.audit({ actor: `seed:${id}`, agentId: this.mustGet(id).target, action: 'seed.finish', outcome: aborted ? 'aborted' : 'failed', message: `${err.code}: ${err.message}` });
    } finally {
      this.publish(id);
    }
  }

  private async runStage(id: string, stage: StageName, signal: AbortSignal): Promise<string | null> {
    const seed = this.mustGet(id);
    switch (stage) {
      case 'precheck':
        return null; // done synchronously in create(); a resumed seed has it recorded
      case 'prepare-source':
        return this.prepareSource(seed, signal);
      case 'prepare-target': {
        const requiredBytes = seed.bytesTotal === null ? 0 : seed.bytesTotal;
        const out = await this.callAgent(seed.target, 'seed-prepare-target', { seedId: id, requiredBytes }, `${id}.prepare-target`, signal);
        return `datadir emptied, marker written${out.freeBytes !== undefined ? `; ${formatBytes(out.freeBytes)} free` : ''}`;
      }
      case 'transfer':
        return this.transfer(id, signal);
      case 'verify':
        return this.verify(id);
      case 'finalize-target': {
        const transfer = this.store.internals(id).transfer;
        if (!transfer) throw new SeedwireError('SEEDWIRE_INTERNAL', 'no transfer result recorded');
        // A hot backup is applied (--prepare) on the target with the tool that made it.
        const prepare = seed.method === 'backup' ? (transfer.sent.tool ?? 'mariabackup') : null;
        const params = { seedId: id, digest: transfer.sent.digest, startMysql: seed.startTarget, ...(prepare ? { prepare } : {}) };
        const out = await this.callAgent(seed.target, 'seed-finalize-target', params, `${id}.finalize-target`, signal);
        const prepared = prepare ? `backup prepared (${prepare} --prepare); ` : '';
        return seed.startTarget ? `${prepared}marker removed; MySQL ${out.running ? 'running' : 'not running'}` : `${prepared}marker removed; MySQL left stopped (startTarget false)`;
      }
      case 'cleanup-source':
        return this.cleanupSource(seed, signal);
    }
  }

  private async prepareSource(seed: SeedView, signal: AbortSignal): Promise<string> {
    if (seed.method === 'cold') {
      // Only a server the seed stopped is started again afterwards; one already down stays down.
      if (!this.store.internals(seed.id).sourceStopped) {
        const status = await this.callAgent(seed.source, 'mysql-status', {}, `${seed.id}.prepare-source.status`, signal);
        if (!status.running) return 'MySQL was already stopped on the source; it stays stopped after the seed';
        this.store.setSourceStopped(seed.id, true); // recorded first: a crash after the stop still restarts it
      }
      await this.callAgent(seed.source, 'mysql-stop', {}, `${seed.id}.prepare-source.stop`, signal);
      return 'MySQL stopped on the source';
    }
    if (seed.method === 'snapshot') {
      let name = this.store.internals(seed.id).snapshotName;
      if (!name) {
        name = `seed-${seed.id.slice(5, 13)}`;
        this.store.setSnapshotName(seed.id, name);
      }
      const facts = this.deps.hub.facts(seed.source);
      if (!facts?.snapshots.some((s) => s.name.endsWith(name!))) {
        await this.callAgent(seed.source, 'create-snapshot', { name }, `${seed.id}.prepare-source.create`, signal);
      }
      const mount = await this.callAgent(seed.source, 'mount-snapshot', { name }, `${seed.id}.prepare-source.mount`, signal);
      return `snapshot ${name} created and mounted${mount.dataPath ? ` (${mount.dataPath})` : ''}`;
    }
    if (seed.method === 'backup') return 'hot backup: source keeps running';
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', `method ${seed.method} is not supported`);
  }

  private async transfer(id: string, signal: AbortSignal): Promise<string> {
    const seed = this.mustGet(id);
    const source = { kind: seed.method === 'cold' ? 'datadir' : seed.method === 'snapshot' ? 'snapshot' : 'backup' } as const;
    // A backup stream is a pipe: it cannot resume; every attempt runs the backup again from 0.
    const streamed = source.kind === 'backup';
    let resume = !streamed && seed.attempts > 0;
    let fruitless = 0;
    /** Streamed: the most bytes any attempt got across (an attempt that gets further is progress). */
    let best = 0;
    const live = this.liveOf(id);
    for (;;) {
      this.throwIfStopped(signal);
      await Promise.all([this.waitForAgent(seed.source, signal), this.waitForAgent(seed.target, signal)]);
      const attempt = this.store.nextAttempt(id);
      this.throughputRecorder.markAttempt(id, attempt, resume);
      if (streamed) live.bytesDone = 0;
      const before = streamed ? best : live.bytesDone;
      live.rate.reset(live.bytesDone);
      live.received = null;
      if (resume) this.store.setStageMessage(id, 'transfer', `attempt ${attempt}: resuming from the target's committed offset`);
      else if (streamed && attempt > 1) this.store.setStageMessage(id, 'transfer', `attempt ${attempt}: a backup stream cannot resume; running the backup again from the start`);
      try {
        const { sent, received } = await this.transferOnce(seed, source, attempt, resume, signal);
        this.store.setTransfer(id, { sent, received });
        this.store.setProgress(id, received.bytes, received.bytes);
        live.bytesDone = received.bytes;
        const result: Record<string, unknown> = { files: received.files, bytes: received.bytes, digest: received.digest, attempts: attempt };
        if (sent.binlog) result['binlog'] = sent.binlog;
        if (streamed && sent.tool) result['backupTool'] = sent.tool;
        this.store.setResult(id, result);
        return `${received.files} files, ${formatBytes(received.bytes)} in ${attempt} attempt${attempt > 1 ? 's' : ''}`;
      } catch (error) {
        const err = toSeedwireError(error);
        this.throwIfStopped(signal);
        if (!LINK_ERRORS.has(err.code)) throw err;
        fruitless = live.bytesDone > before ? 0 : fruitless + 1;
        best = Math.max(best, live.bytesDone);
        if (fruitless >= MAX_FRUITLESS_ATTEMPTS) {
          throw new SeedwireError('SEEDWIRE_DISCONNECTED', `transfer made no progress in ${fruitless} attempts: ${err.message}`, { cause: err });
        }
        this.deps.log.warn({ seedId: id, attempt, code: err.code, err: err.message }, 'transfer interrupted; resuming');
        this.deps.audit({ actor: `seed:${id}`, agentId: seed.target, action: 'seed.transfer.interrupted', outcome: 'failed', message: `${err.code}: ${err.message}; ${streamed ? 'starting over' : 'resuming'}` });
        resume = !streamed;
      }
    }
  }

  /** One attempt: receiver first (it says where to start), then the sender from that offset. */
  private async transferOnce(
    seed: SeedView,
    source: { kind: 'datadir' | 'snapshot' | 'backup' },
    attempt: number,
    resume: boolean,
    signal: AbortSignal,
  ): Promise<{ sent: SendSummary; received: TransferSummary }> {
    const { hub } = this.deps;
    const stream = hub.relay.allocate();
    hub.relay.open(stream, { from: seed.source, to: seed.target });
    const attemptAbort = new AbortController();
    const onStop = (): void => attemptAbort.abort(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    const ticker = setInterval(() => this.publishProgress(seed.id, true), 1_000);
    ticker.unref();

    let resolveReady!: (offset: number) => void;
    const ready = new Promise<number>((resolve) => {
      resolveReady = resolve;
    });
    const receiveParams: OpParamsInput<'seed-receive'> = {
      seedId: seed.id,
      stream,
      resume,
      ...(source.kind === 'backup' ? { format: 'stream', backupTool: this.deps.hub.facts(seed.source)?.backupTool ?? 'mariabackup' } : {}),
      // The target refuses a stream that declares more than the room its precheck asked for.
      ...(seed.bytesTotal === null ? {} : { maxBytes: Math.ceil(seed.bytesTotal * (1 + SPACE_MARGIN_RATIO)) + SPACE_MARGIN_BYTES }),
    };
    const step = { actor: `seed:${seed.id}`, seedId: seed.id, stage: 'transfer' } as const;
    const receive = this.deps.operations.run(seed.target, 'seed-receive', receiveParams, {
      ...step,
      callId: `${seed.id}.receive.${attempt}`,
      signal: attemptAbort.signal,
      onDisconnect: 'fail',
      onProgress: (data) => {
        if ('ready' in data) {
          resolveReady(data.offset);
          this.onCommitted(seed.id, data.offset);
        } else {
          this.liveOf(seed.id).received = data.received;
          this.onCommitted(seed.id, data.committed);
        }
      },
    });
    let send: Promise<CallOutcome<SendSummary>> | null = null;
    try {
      const offset = await Promise.race([ready, receive.then(() => Promise.reject(new SeedwireError('SEEDWIRE_INTERNAL', 'receiver ended before it was ready')))]);
      const limit = await hub.relay.waitForCredit(stream, offset, attemptAbort.signal);
      this.store.setStageMessage(seed.id, 'transfer', `attempt ${attempt}: sending from offset ${offset} (${seed.effectiveCompression})`);
      this.publish(seed.id);
      send = this.deps.operations.run(seed.source, 'seed-send', { seedId: seed.id, stream, source, offset, limit, compression: seed.effectiveCompression, ...(seed.maxBytesPerSec ? { maxBytesPerSec: seed.maxBytesPerSec } : {}) }, {
        ...step,
        callId: `${seed.id}.send.${attempt}`,
        signal: attemptAbort.signal,
        onDisconnect: 'fail',
      });
      // Whichever side fails first stops the other.
      const [sent, received] = await Promise.all([
        send.catch((e: unknown) => {
          attemptAbort.abort('peer failed');
          throw e;
        }),
        receive.catch((e: unknown) => {
          attemptAbort.abort('peer failed');
          throw e;
        }),
      ]);
      return { sent: sent.result, received: received.result };
    } finally {
      attemptAbort.abort('attempt over');
      signal.removeEventListener('abort', onStop);
      clearInterval(ticker);
      await Promise.allSettled([receive, ...(send ? [send] : [])]);
      hub.relay.close(stream);
    }
  }

  private verify(id: string): string {
    const transfer = this.store.internals(id).transfer;
    if (!transfer) throw new SeedwireError('SEEDWIRE_INTERNAL', 'no transfer result recorded');
    const { sent, received } = transfer;
    if (sent.digest !== received.digest || sent.files !== received.files || sent.bytes !== received.bytes) {
      throw new SeedwireError(
        'SEEDWIRE_VERIFY_FAILED',
        `source sent ${sent.files} files / ${sent.bytes} bytes / digest ${sent.digest.slice(0, 16)}…, target received ${received.files} files / ${received.bytes} bytes / digest ${received.digest.slice(0, 16)}…`,
      );
    }
    return `${received.files} files verified; digest ${received.digest.slice(0, 16)}…`;
  }

  private async cleanupSource(seed: SeedView, signal: AbortSignal): Promise<string> {
    const internals = this.store.internals(seed.id);
    const done: string[] = [];
    if (internals.snapshotName) {
      const facts = this.deps.hub.facts(seed.source);
      if (!facts || facts.mounted) {
        await this.callAgent(seed.source, 'unmount-snapshot', {}, `${seed.id}.cleanup-source.unmount`, signal);
      }
      await this.callAgent(seed.source, 'remove-snapshot', { name: internals.snapshotName }, `${seed.id}.cleanup-source.remove`, signal);
      this.store.setSnapshotName(seed.id, null);
      done.push(`snapshot ${internals.snapshotName} unmounted and removed`);
    }
    if (internals.sourceStopped) {
      await this.callAgent(seed.source, 'mysql-start', {}, `${seed.id}.cleanup-source.start`, signal);
      this.store.setSourceStopped(seed.id, false);
      done.push('MySQL started again on the source');
    }
    return done.length > 0 ? done.join('; ') : 'nothing to clean up';
  }

  /**
   * Best effort, each step on its own: source back to how it was, target's partial data gone,
   * marker kept. A prepare-target that refused (MySQL in use, no space) deleted nothing, so the
   * target is not touched; otherwise the target agent itself empties it only if this seed's
   * marker is there and its datadir guard passes, and says why when it does not.
   */
  private async cleanupAfterFailure(id: string, signal: AbortSignal, prepareTargetError: ErrorCode | null = null): Promise<void> {
    const seed = this.mustGet(id);
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['source', () => this.cleanupSource(seed, signal)],
      [
        'target',
        async () => {
          const prepared = seed.stages.find((s) => s.name === 'prepare-target')?.state;
          if (prepared === 'pending') return;
          if (prepareTargetError !== null && REFUSALS_BEFORE_DELETE.has(prepareTargetError)) {
            this.deps.audit({ actor: `seed:${id}`, agentId: seed.target, action: 'seed.cleanup.target', outcome: 'ok', message: `target left as it is: prepare-target refused (${prepareTargetError}) before deleting anything` });
            return;
          }
          const out = await this.callAgent(seed.target, 'seed-cleanup-target', { seedId: id }, `${id}.cleanup-target`, signal, LIMITS.drainMs * 2);
          this.deps.audit({ actor: `seed:${id}`, agentId: seed.target, action: 'seed.cleanup.target', outcome: 'ok', message: out.reason ?? (out.cleaned ? 'partial data removed' : 'target left as it is') });
        },
      ],
    ];
    for (const [side, step] of steps) {
      try {
        await step();
      } catch (error) {
        const err = toSeedwireError(error);
        this.deps.log.warn({ seedId: id, side, code: err.code, err: err.message }, 'cleanup step failed');
        this.deps.audit({ actor: `seed:${id}`, agentId: side === 'source' ? seed.source : seed.target, action: `seed.cleanup.${side}`, outcome: 'failed', message: `${err.code}: ${err.message}` });
      }
    }
  }

  // ---- prechecks ---------------------------------------------------------------------------

  private async precheck(request: SeedRequest): Promise<{ method: SeedMethod; compression: Compression; bytesTotal: number; summary: string }> {
    const { hub } = this.deps;
    const refuse = (message: string, code: ErrorCode = 'SEEDWIRE_PRECHECK_FAILED'): never => {
      throw new SeedwireError(code, message);
    };
    if (request.source === request.target) refuse('source and target are the same agent');
    for (const [role, agentId] of [['source', request.source], ['target', request.target]] as const) {
      if (!hub.agent(agentId)) refuse(`${role} agent ${agentId} is unknown`);
      if (!hub.isConnected(agentId)) refuse(`${role} agent ${agentId} is not connected`);
      const active = this.store.activeFor(agentId);
      if (active) refuse(`${role} agent ${agentId} is already in seed ${active}`);
    }
    const sourceFacts = this.needFacts(request.source, 'source');
    const targetFacts = this.needFacts(request.target, 'target');
    if (!sourceFacts.mysqlConfigured) refuse(`source ${request.source} has no mysql section in its agent config`);
    if (!targetFacts.mysqlConfigured) refuse(`target ${request.target} has no mysql section in its agent config`);

    const method: SeedMethod = request.method ?? (sourceFacts.snapshotBackend !== 'none' ? 'snapshot' : 'cold');
    if (method === 'backup') {
      if (!sourceFacts.backupTool) refuse(`source ${request.source} has no backup section in its agent config (set backup.tool)`);
      // A hot backup copies a running server (that is its point); asked live, not from facts.
      const sourceStatus = (await hub.call(request.source, 'mysql-status', {}, { timeoutMs: 30_000 })).result;
      if (!sourceStatus.running) refuse(`MySQL is not running on the source ${request.source}; a hot backup needs it running (use method cold for a stopped server)`);
    }
    if (method === 'snapshot') {
      if (sourceFacts.snapshotBackend === 'none') refuse(`source ${request.source} has no snapshot backend (set snapshot.backend in its agent config); use method cold`);
      if (sourceFacts.mounted) refuse(`source ${request.source} has snapshot ${sourceFacts.mounted.name} mounted; unmount it first`);
    }

    const status = (await hub.call(request.target, 'mysql-status', {}, { timeoutMs: 30_000 })).result;
    if (status.running) refuse(`MySQL is running on the target ${request.target}; stop it first`);

    const size = (await hub.call(request.source, 'seed-source-size', { source: { kind: 'datadir' } }, { timeoutMs: 300_000 })).result;
    const free = (await hub.call(request.target, 'mysql-datadir-available-space', {}, { timeoutMs: 30_000 })).result;
    const reclaimable = targetFacts.datadirBytes ?? 0;
    const required = Math.ceil(size.bytes * (1 + SPACE_MARGIN_RATIO)) + SPACE_MARGIN_BYTES;
    if (free.bytes + reclaimable < required) {
      refuse(
        `target ${request.target} has ${formatBytes(free.bytes + reclaimable)} available (free plus its current datadir) but the seed needs ${formatBytes(required)} (${formatBytes(size.bytes)} plus margin)`,
        'SEEDWIRE_NO_SPACE',
      );
    }

    const requested = request.compression ?? 'auto';
    const remote = sourceFacts.datacenter !== null && targetFacts.datacenter !== null && sourceFacts.datacenter !== targetFacts.datacenter;
    const compression: Compression = requested === 'auto' ? (remote ? 'zstd' : 'none') : requested;
    const summary = `${method} seed of ${formatBytes(size.bytes)} in ${size.files} files; ${remote ? 'remote' : 'local'} datacenter; compression ${compression}`;
    return { method, compression, bytesTotal: size.bytes, summary };
  }

  private needFacts(agentId: string, role: string): Facts {
    const facts = this.deps.hub.facts(agentId);
    if (!facts) throw new SeedwireError('SEEDWIRE_PRECHECK_FAILED', `${role} agent ${agentId} has not reported its facts yet`);
    return facts;
  }

  // ---- helpers -----------------------------------------------------------------------------

  /**
   * A seed step as an operation linked to the seed (its output, exit code and audit on record),
   * surviving reconnects: waits for the agent, and re-sends the same call id after a drop (the
   * runner re-attaches to the row, the agent's ledger runs an id once and re-delivers its
   * result). Call ids are `${seedId}.${stage}[.detail]`. A seed abort cancels the step on the
   * agent; a controller shutdown only stops waiting, so the next process resumes the same call.
   */
  private async callAgent<N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, callId: string, signal: AbortSignal, waitMs?: number): Promise<OpResultOf<N>> {
    const [seedId = callId, stage = op] = callId.split('.');
    for (;;) {
      this.throwIfStopped(signal);
      await this.waitForAgent(agentId, signal, waitMs);
      const cancel = new AbortController();
      const onStop = (): void => {
        if (signal.reason !== ('shutdown' satisfies StopReason)) cancel.abort(signal.reason);
      };
      signal.addEventListener('abort', onStop, { once: true });
      try {
        const step = this.deps.operations.run(agentId, op, params, { actor: `seed:${seedId}`, seedId, stage, callId, signal: cancel.signal, onDisconnect: 'wait' });
        return (await untilStopped(step, signal)).result;
      } catch (error) {
        const err = toSeedwireError(error);
        if (signal.aborted || !LINK_ERRORS.has(err.code)) throw err;
      } finally {
        signal.removeEventListener('abort', onStop);
      }
    }
  }

  private async waitForAgent(agentId: string, signal: AbortSignal, waitMs = this.deps.reconnectWaitMs ?? 10 * 60_000): Promise<void> {
    if (this.deps.hub.isConnected(agentId)) return;
    const timeout = AbortSignal.timeout(waitMs);
    try {
      await this.deps.hub.waitForAgent(agentId, AbortSignal.any([signal, timeout]));
    } catch (error) {
      if (timeout.aborted && !signal.aborted) {
        throw new SeedwireError('SEEDWIRE_AGENT_OFFLINE', `agent ${agentId} did not reconnect within ${Math.round(waitMs / 1000)} s`, { cause: error });
      }
      throw error;
    }
  }

  private throwIfStopped(signal: AbortSignal): void {
    if (signal.aborted) throw new SeedwireError('SEEDWIRE_CANCELED', String(signal.reason));
  }

  private mustGet(id: string): SeedView {
    const seed = this.store.get(id);
    if (!seed) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${id}`);
    return seed;
  }

  private agentOfStage(seed: SeedView, stage: StageName): string {
    return stage === 'prepare-source' || stage === 'cleanup-source' ? seed.source : seed.target;
  }

  private liveOf(id: string): LiveProgress {
    let live = this.live.get(id);
    if (!live) {
      live = { rate: new RateMeter(), bytesDone: this.store.get(id)?.bytesDone ?? 0, received: null, lastPublishAt: 0, lastPersistAt: 0 };
      this.live.set(id, live);
    }
    return live;
  }

  private onCommitted(id: string, committed: number): void {
    const live = this.liveOf(id);
    live.bytesDone = committed;
    live.rate.sample(committed);
    this.publishProgress(id, false);
  }

  /** Progress reaches the API and the event stream at most 4 times a second, the store once a second. */
  private publishProgress(id: string, force: boolean): void {
    const live = this.liveOf(id);
    const t = performance.now();
    if (t - live.lastPersistAt >= 1_000) {
      live.lastPersistAt = t;
      this.store.setProgress(id, live.bytesDone);
    }
    if (force || t - live.lastPublishAt >= 250) {
      live.lastPublishAt = t;
      this.publish(id);
    }
  }

  private withLive(seed: SeedView): SeedView {
    const live = this.live.get(seed.id);
    if (!live || seed.state !== 'running') return seed;
    const bytesDone = Math.max(seed.bytesDone, live.bytesDone);
    const bytesPerSec = live.rate.value === null ? null : Math.round(live.rate.value);
    return { ...seed, bytesDone, bytesPerSec, etaSeconds: estimateEta(seed.bytesTotal, bytesDone, bytesPerSec) };
  }

  private publish(id: string): SeedView {
    const seed = this.get(id);
    if (!seed) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${id}`);
    this.deps.bus.publish('seed', seed);
    return seed;
  }
}

/** The step's outcome, or a rejection as soon as `signal` aborts (the step itself is left to its own signal). */
async function untilStopped<T>(step: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    step.catch(() => undefined);
    throw new SeedwireError('SEEDWIRE_CANCELED', String(signal.reason));
  }
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(new SeedwireError('SEEDWIRE_CANCELED', String(signal.reason)));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([step, stopped]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    step.catch(() => undefined);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
