/**
 * The transfer stage: the seed's lanes (one, or `seed.lanes` for a resumable method), each
 * running attempts until it completes. Each attempt opens a relay stream, asks the target where
 * that lane starts (`seed-receive` reports `{ready, offset}`), waits for its first credit, then
 * has the source send that lane from there. A link error starts a new attempt of that lane only
 * (resuming from its committed offset when the method allows, else from 0);
 * `maxFruitlessAttempts` attempts of a lane in a row without progress fail the seed with
 * SEEDWIRE_DISCONNECTED. Any other failure of a lane stops every lane and fails the seed.
 * Once every lane is done, the lanes' summaries combine into the seed's (shared/lanes.ts).
 */
import type { Logger } from 'pino';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { combineLaneSummaries, type Lane } from '../../shared/lanes.js';
import { CONTENT_HASH_BLAKE3_CAPABILITY, type ContentHashName, type OpParamsInput, type SendSummary, type TransferSummary } from '../../shared/ops.js';
import type { AgentHub } from '../hub/types.js';
import type { StreamTokens } from '../hub/stream-tokens.js';
import { LINK_ERRORS, throwIfStopped, type AgentSteps } from './agent-steps.js';
import { formatBytes } from './format.js';
import { requiredBytes, SEED_LIMITS } from './limits.js';
import type { LiveProgress } from './live-progress.js';
import type { SeedMethod } from './methods/index.js';
import type { SeedStore } from './store.js';
import type { ThroughputRecorder } from './throughput-recorder.js';
import type { AuditRecord, SeedView } from './types.js';

export interface TransferDeps {
  hub: Pick<AgentHub, 'relay' | 'facts' | 'agent'>;
  steps: AgentSteps;
  store: SeedStore;
  live: LiveProgress;
  recorder: Pick<ThroughputRecorder, 'markAttempt'>;
  audit: (record: AuditRecord) => Promise<void>;
  log: Logger;
  /** Publishes the seed's current view (reads it from the store; failures are logged). */
  publish: (id: string) => void;
}

interface LaneResult {
  sent: SendSummary;
  received: TransferSummary;
}

/** The lanes' committed and received offsets, summed into the seed's live progress. */
class LaneOffsets {
  private readonly committedBy: number[];
  private readonly receivedBy: number[];

  constructor(
    private readonly live: LiveProgress,
    private readonly seedId: string,
    count: number,
  ) {
    this.committedBy = new Array<number>(count).fill(0);
    this.receivedBy = new Array<number>(count).fill(0);
  }

  committed(lane: number, offset: number): void {
    this.committedBy[lane] = offset;
    this.live.committed(this.seedId, sum(this.committedBy));
  }

  received(lane: number, offset: number): void {
    this.receivedBy[lane] = offset;
    this.live.received(this.seedId, sum(this.receivedBy));
  }

  of(lane: number): number {
    return this.committedBy[lane] ?? 0;
  }
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/**
 * The content hash of the whole stage, chosen once: BLAKE3 when both agents offer it (a tree
 * stream only), else SHA-256 (undefined: the param is not sent, so an older agent never sees it).
 * Every attempt of every lane uses it. Chosen per attempt from the live sessions, an attempt made
 * while an agent's session had just dropped chose SHA-256; the target could not resume its
 * BLAKE3 receive state with it, and every lane started over from 0 (measured: a 30 s outage
 * mid-seed in test/system/long-link.test.ts). The agents' capabilities as of their latest hello,
 * from the session or the store, are the same whichever controller runs the stage.
 */
async function chooseContentHash(deps: TransferDeps, seed: SeedView, method: SeedMethod): Promise<ContentHashName | undefined> {
  if (method.transfer.format === 'stream') return undefined;
  const [source, target] = await Promise.all([deps.hub.agent(seed.source), deps.hub.agent(seed.target)]);
  const offers = (agent: Awaited<typeof source>): boolean => agent?.capabilities.includes(CONTENT_HASH_BLAKE3_CAPABILITY) ?? false;
  return offers(source) && offers(target) ? 'blake3' : undefined;
}

/** Runs every lane to completion; returns the stage's message. */
export async function runTransfer(deps: TransferDeps, seed: SeedView, method: SeedMethod, signal: AbortSignal): Promise<string> {
  const { store, live } = deps;
  const id = seed.id;
  // A stream that cannot resume cannot be split either: one lane (chooseLanes says so too).
  const count = method.transfer.resumable ? seed.lanes : 1;
  const contentHash = await chooseContentHash(deps, seed, method);
  const offsets = new LaneOffsets(live, id, count);
  // One lane failing for good stops the others.
  const stopAll = new AbortController();
  const onStop = (): void => stopAll.abort(signal.reason);
  signal.addEventListener('abort', onStop, { once: true });
  /** The first lane to fail on its own account (the others then stop because of it). */
  let firstFailure: { error: unknown } | null = null;
  const runs = Array.from({ length: count }, (_, index) =>
    runLane(deps, seed, method, count === 1 ? null : { index, count }, offsets, contentHash, stopAll.signal).catch((error: unknown) => {
      if (!stopAll.signal.aborted) {
        firstFailure = { error };
        stopAll.abort('another lane failed');
      }
      throw error;
    }),
  );
  let results: LaneResult[];
  try {
    // Every lane has ended (and closed its stream) before the stage moves on or fails.
    const settled = await Promise.allSettled(runs);
    throwIfStopped(signal);
    const failure = firstFailure as { error: unknown } | null;
    if (failure) throw failure.error;
    results = settled.map((r) => {
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
  } finally {
    signal.removeEventListener('abort', onStop);
  }
  const sentLanes = results.map((r) => r.sent);
  const lane0 = sentLanes[0] as SendSummary;
  const sent: SendSummary = { ...combineLaneSummaries(sentLanes), ...(lane0.binlog ? { binlog: lane0.binlog } : {}), ...(lane0.tool ? { tool: lane0.tool } : {}) };
  const received: TransferSummary = combineLaneSummaries(results.map((r) => r.received));
  const attempts = Math.max(1, (await store.get(id))?.attempts ?? 1);
  await store.setTransfer(id, { sent, received });
  await store.setProgress(id, received.bytes, received.bytes);
  live.finished(id, received.bytes);
  await store.setResult(id, {
    files: received.files,
    bytes: received.bytes,
    digest: received.digest,
    attempts,
    ...(sent.binlog ? { binlog: sent.binlog } : {}),
    ...method.resultExtras?.(sent),
  });
  const over = count > 1 ? ` over ${count} lanes` : '';
  return `${received.files} files, ${formatBytes(received.bytes)}${over} in ${attempts} attempt${attempts > 1 ? 's' : ''}`;
}

/** One lane's attempts until it completes (lane null: the seed's one lane). */
async function runLane(
  deps: TransferDeps,
  seed: SeedView,
  method: SeedMethod,
  lane: Lane | null,
  offsets: LaneOffsets,
  contentHash: ContentHashName | undefined,
  signal: AbortSignal,
): Promise<LaneResult> {
  const { store, live } = deps;
  const id = seed.id;
  const index = lane?.index ?? 0;
  const { resumable } = method.transfer;
  const name = lane ? `lane ${index}: ` : '';
  let resume = resumable && seed.attempts > 0;
  let fruitless = 0;
  /** Not resumable: the most bytes any attempt got across (an attempt that gets further is progress). */
  let best = 0;
  let laneAttempts = 0;
  for (;;) {
    throwIfStopped(signal);
    await Promise.all([deps.steps.waitForAgent(seed.source, signal), deps.steps.waitForAgent(seed.target, signal)]);
    const attempt = await store.nextAttempt(id);
    laneAttempts += 1;
    // The chart counts attempts per lane (the lanes' first attempts are all the seed's first one, not
    // attempts 1..N); with one lane this is the stored attempt number.
    deps.recorder.markAttempt(id, seed.attempts + laneAttempts, resume);
    live.startAttempt(id, !resumable);
    const before = resumable ? offsets.of(index) : best;
    if (resume) await store.setStageMessage(id, 'transfer', `${name}attempt ${attempt}: resuming from the target's committed offset`);
    else if (!resumable && attempt > 1) await store.setStageMessage(id, 'transfer', `attempt ${attempt}: a backup stream cannot resume; running the backup again from the start`);
    try {
      return await transferOnce(deps, seed, method, lane, offsets, attempt, resume, contentHash, signal);
    } catch (error) {
      const err = toSeedwireError(error);
      throwIfStopped(signal);
      if (!LINK_ERRORS.has(err.code)) throw err;
      const reached = offsets.of(index);
      fruitless = reached > before ? 0 : fruitless + 1;
      best = Math.max(best, reached);
      if (fruitless >= SEED_LIMITS.maxFruitlessAttempts) {
        throw new SeedwireError('SEEDWIRE_DISCONNECTED', `transfer ${lane ? `lane ${index} ` : ''}made no progress in ${fruitless} attempts: ${err.message}`, { cause: err });
      }
      deps.log.warn({ seedId: id, lane: lane?.index, attempt, code: err.code, err: err.message }, 'transfer interrupted; resuming');
      await deps.audit({
        actor: `seed:${id}`,
        agentId: seed.target,
        action: 'seed.transfer.interrupted',
        outcome: 'failed',
        message: `${name}${err.code}: ${err.message}; ${resumable ? 'resuming' : 'starting over'}`,
      });
      resume = resumable;
    }
  }
}

interface TransferStream {
  stream: number;
  /** The stream's two one-time data-connection tokens, or null when it travels on the control links. */
  tokens: StreamTokens | null;
  /**
   * Rejects with SEEDWIRE_DISCONNECTED if the route is closed under the attempt (its data path
   * lost): only this lane's attempt fails, as a link error. Never settles otherwise.
   */
  lost: Promise<never>;
  close: () => void;
}

/**
 * The relay stream of one attempt of one lane, source → target; `close` ends it. The one place
 * a transfer opens its data path.
 */
function openTransferStream(deps: TransferDeps, seed: SeedView, signal: AbortSignal): TransferStream {
  const { relay } = deps.hub;
  const stream = relay.allocate();
  // Non-null when both agents dial data connections: each side gets its own one-time token.
  const tokens = relay.open(stream, { from: seed.source, to: seed.target });
  // No credit ever reaches this bound: the wait ends only when the route closes, or with the attempt.
  const lost = relay.waitForCredit(stream, Number.MAX_SAFE_INTEGER, signal).then(
    () => new Promise<never>(() => undefined),
    (error: unknown) => {
      if (signal.aborted) return new Promise<never>(() => undefined);
      throw new SeedwireError('SEEDWIRE_DISCONNECTED', `the relay closed stream ${stream}`, { cause: error });
    },
  );
  lost.catch(() => undefined); // raced below; never unhandled
  return { stream, tokens, lost, close: () => relay.close(stream) };
}

/** One attempt of one lane: receiver first (it says where to start), then the sender from that offset. */
async function transferOnce(
  deps: TransferDeps,
  seed: SeedView,
  method: SeedMethod,
  lane: Lane | null,
  offsets: LaneOffsets,
  attempt: number,
  resume: boolean,
  hash: ContentHashName | undefined,
  signal: AbortSignal,
): Promise<LaneResult> {
  const { relay } = deps.hub;
  const { live, steps } = deps;
  const index = lane?.index ?? 0;
  const attemptAbort = new AbortController();
  const { stream, tokens, lost, close } = openTransferStream(deps, seed, attemptAbort.signal);
  const onStop = (): void => attemptAbort.abort(signal.reason);
  signal.addEventListener('abort', onStop, { once: true });
  const ticker = setInterval(() => live.tick(seed.id), SEED_LIMITS.persistMs);
  ticker.unref();
  // Call ids name the lane (a one-lane seed keeps the ids it always had).
  const callId = (side: 'receive' | 'send'): string => (lane ? `${seed.id}.lane${index}.${side}.${attempt}` : `${seed.id}.${side}.${attempt}`);

  let resolveReady!: (offset: number) => void;
  const ready = new Promise<number>((resolve) => {
    resolveReady = resolve;
  });
  const contentHash = hash === undefined ? {} : { contentHash: hash };
  const receiveParams: OpParamsInput<'seed-receive'> = {
    seedId: seed.id,
    ...contentHash,
    stream,
    resume,
    ...(method.transfer.format === 'stream' ? { format: 'stream' } : {}),
    ...method.receiveParams?.(deps.hub.facts(seed.source)),
    // The target refuses a stream that declares more than the room its precheck asked for.
    ...(seed.bytesTotal === null ? {} : { maxBytes: requiredBytes(seed.bytesTotal) }),
    ...(lane ? { lane } : {}),
    ...(tokens ? { data: { token: tokens.receive } } : {}),
  };
  const receive = steps.step(seed.target, 'seed-receive', receiveParams, {
    seedId: seed.id,
    stage: 'transfer',
    callId: callId('receive'),
    signal: attemptAbort.signal,
    onDisconnect: 'fail',
    onProgress: (data) => {
      if ('ready' in data) {
        resolveReady(data.offset);
        offsets.committed(index, data.offset);
      } else {
        offsets.received(index, data.received);
        offsets.committed(index, data.committed);
      }
    },
  });
  let send: Promise<SendSummary> | null = null;
  try {
    const offset = await Promise.race([lost, ready, receive.then(() => Promise.reject(new SeedwireError('SEEDWIRE_INTERNAL', 'receiver ended before it was ready')))]);
    const limit = await relay.waitForCredit(stream, offset, attemptAbort.signal);
    const name = lane ? `lane ${index}, ` : '';
    await deps.store.setStageMessage(seed.id, 'transfer', `${name}attempt ${attempt}: sending from offset ${offset} (${seed.effectiveCompression})`);
    deps.publish(seed.id);
    const sendParams: OpParamsInput<'seed-send'> = {
      seedId: seed.id,
      stream,
      source: { kind: method.transfer.source },
      offset,
      limit,
      compression: seed.effectiveCompression,
      ...contentHash,
      // Each lane gets its share of the seed's cap.
      ...(seed.maxBytesPerSec ? { maxBytesPerSec: Math.max(1, Math.floor(seed.maxBytesPerSec / (lane?.count ?? 1))) } : {}),
      ...(lane ? { lane } : {}),
      ...(tokens ? { data: { token: tokens.send } } : {}),
    };
    send = steps.step(seed.source, 'seed-send', sendParams, { seedId: seed.id, stage: 'transfer', callId: callId('send'), signal: attemptAbort.signal, onDisconnect: 'fail' });
    // Whichever side fails first stops the other; a lost stream stops both.
    const [sent, received] = await Promise.race([
      lost,
      Promise.all([
        send.catch((e: unknown) => {
          attemptAbort.abort('peer failed');
          throw e;
        }),
        receive.catch((e: unknown) => {
          attemptAbort.abort('peer failed');
          throw e;
        }),
      ]),
    ]);
    return { sent, received };
  } finally {
    attemptAbort.abort('attempt over');
    signal.removeEventListener('abort', onStop);
    clearInterval(ticker);
    await Promise.allSettled([receive, ...(send ? [send] : [])]);
    close();
  }
}
