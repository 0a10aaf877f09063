/**
 * The transfer stage: attempts until one completes. Each attempt opens a relay stream, asks the
 * target where to start (`seed-receive` reports `{ready, offset}`), waits for its first credit,
 * then has the source send from there. A link error starts a new attempt (resuming from the
 * target's committed offset when the method allows, else from 0); `maxFruitlessAttempts` attempts
 * in a row without progress fail the seed with SEEDWIRE_DISCONNECTED.
 */
import type { Logger } from 'pino';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { OpParamsInput, SendSummary, TransferSummary } from '../../shared/ops.js';
import type { AgentHub } from '../hub/types.js';
import { LINK_ERRORS, throwIfStopped, type AgentSteps } from './agent-steps.js';
import { formatBytes } from './format.js';
import { requiredBytes, SEED_LIMITS } from './limits.js';
import type { LiveProgress } from './live-progress.js';
import type { SeedMethod } from './methods/index.js';
import type { SeedStore } from './store.js';
import type { ThroughputRecorder } from './throughput-recorder.js';
import type { AuditRecord, SeedView } from './types.js';

export interface TransferDeps {
  hub: Pick<AgentHub, 'relay' | 'facts'>;
  steps: AgentSteps;
  store: SeedStore;
  live: LiveProgress;
  recorder: Pick<ThroughputRecorder, 'markAttempt'>;
  audit: (record: AuditRecord) => void;
  log: Logger;
  publish: (id: string) => void;
}

/** Runs attempts until one completes; returns the stage's message. */
export async function runTransfer(deps: TransferDeps, seed: SeedView, method: SeedMethod, signal: AbortSignal): Promise<string> {
  const { store, live } = deps;
  const id = seed.id;
  const { resumable } = method.transfer;
  let resume = resumable && seed.attempts > 0;
  let fruitless = 0;
  /** Not resumable: the most bytes any attempt got across (an attempt that gets further is progress). */
  let best = 0;
  for (;;) {
    throwIfStopped(signal);
    await Promise.all([deps.steps.waitForAgent(seed.source, signal), deps.steps.waitForAgent(seed.target, signal)]);
    const attempt = store.nextAttempt(id);
    deps.recorder.markAttempt(id, attempt, resume);
    live.startAttempt(id, !resumable);
    const before = resumable ? live.bytesDone(id) : best;
    if (resume) store.setStageMessage(id, 'transfer', `attempt ${attempt}: resuming from the target's committed offset`);
    else if (!resumable && attempt > 1) store.setStageMessage(id, 'transfer', `attempt ${attempt}: a backup stream cannot resume; running the backup again from the start`);
    try {
      const { sent, received } = await transferOnce(deps, seed, method, attempt, resume, signal);
      store.setTransfer(id, { sent, received });
      store.setProgress(id, received.bytes, received.bytes);
      live.finished(id, received.bytes);
      store.setResult(id, {
        files: received.files,
        bytes: received.bytes,
        digest: received.digest,
        attempts: attempt,
        ...(sent.binlog ? { binlog: sent.binlog } : {}),
        ...method.resultExtras?.(sent),
      });
      return `${received.files} files, ${formatBytes(received.bytes)} in ${attempt} attempt${attempt > 1 ? 's' : ''}`;
    } catch (error) {
      const err = toSeedwireError(error);
      throwIfStopped(signal);
      if (!LINK_ERRORS.has(err.code)) throw err;
      const reached = live.bytesDone(id);
      fruitless = reached > before ? 0 : fruitless + 1;
      best = Math.max(best, reached);
      if (fruitless >= SEED_LIMITS.maxFruitlessAttempts) {
        throw new SeedwireError('SEEDWIRE_DISCONNECTED', `transfer made no progress in ${fruitless} attempts: ${err.message}`, { cause: err });
      }
      deps.log.warn({ seedId: id, attempt, code: err.code, err: err.message }, 'transfer interrupted; resuming');
      deps.audit({ actor: `seed:${id}`, agentId: seed.target, action: 'seed.transfer.interrupted', outcome: 'failed', message: `${err.code}: ${err.message}; ${resumable ? 'resuming' : 'starting over'}` });
      resume = resumable;
    }
  }
}

/** One attempt: receiver first (it says where to start), then the sender from that offset. */
async function transferOnce(
  deps: TransferDeps,
  seed: SeedView,
  method: SeedMethod,
  attempt: number,
  resume: boolean,
  signal: AbortSignal,
): Promise<{ sent: SendSummary; received: TransferSummary }> {
  const { relay } = deps.hub;
  const { live, steps } = deps;
  const stream = relay.allocate();
  // Non-null when both agents dial data connections: each side gets its own one-time token.
  const tokens = relay.open(stream, { from: seed.source, to: seed.target });
  const attemptAbort = new AbortController();
  const onStop = (): void => attemptAbort.abort(signal.reason);
  signal.addEventListener('abort', onStop, { once: true });
  const ticker = setInterval(() => live.tick(seed.id), SEED_LIMITS.persistMs);
  ticker.unref();

  let resolveReady!: (offset: number) => void;
  const ready = new Promise<number>((resolve) => {
    resolveReady = resolve;
  });
  const receiveParams: OpParamsInput<'seed-receive'> = {
    seedId: seed.id,
    stream,
    resume,
    ...(method.transfer.format === 'stream' ? { format: 'stream' } : {}),
    ...method.receiveParams?.(deps.hub.facts(seed.source)),
    // The target refuses a stream that declares more than the room its precheck asked for.
    ...(seed.bytesTotal === null ? {} : { maxBytes: requiredBytes(seed.bytesTotal) }),
    ...(tokens ? { data: { token: tokens.receive } } : {}),
  };
  const receive = steps.step(seed.target, 'seed-receive', receiveParams, {
    seedId: seed.id,
    stage: 'transfer',
    callId: `${seed.id}.receive.${attempt}`,
    signal: attemptAbort.signal,
    onDisconnect: 'fail',
    onProgress: (data) => {
      if ('ready' in data) {
        resolveReady(data.offset);
        live.committed(seed.id, data.offset);
      } else {
        live.received(seed.id, data.received);
        live.committed(seed.id, data.committed);
      }
    },
  });
  let send: Promise<SendSummary> | null = null;
  try {
    const offset = await Promise.race([ready, receive.then(() => Promise.reject(new SeedwireError('SEEDWIRE_INTERNAL', 'receiver ended before it was ready')))]);
    const limit = await relay.waitForCredit(stream, offset, attemptAbort.signal);
    deps.store.setStageMessage(seed.id, 'transfer', `attempt ${attempt}: sending from offset ${offset} (${seed.effectiveCompression})`);
    deps.publish(seed.id);
    const sendParams: OpParamsInput<'seed-send'> = {
      seedId: seed.id,
      stream,
      source: { kind: method.transfer.source },
      offset,
      limit,
      compression: seed.effectiveCompression,
      ...(seed.maxBytesPerSec ? { maxBytesPerSec: seed.maxBytesPerSec } : {}),
      ...(tokens ? { data: { token: tokens.send } } : {}),
    };
    send = steps.step(seed.source, 'seed-send', sendParams, { seedId: seed.id, stage: 'transfer', callId: `${seed.id}.send.${attempt}`, signal: attemptAbort.signal, onDisconnect: 'fail' });
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
    return { sent, received };
  } finally {
    attemptAbort.abort('attempt over');
    signal.removeEventListener('abort', onStop);
    clearInterval(ticker);
    await Promise.allSettled([receive, ...(send ? [send] : [])]);
    relay.close(stream);
  }
}
