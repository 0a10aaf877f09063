/**
 * The receive checkpoint: the only code that reads or writes a receiving seed's state in the
 * agent's stateDir, and the one place the whole-stream digest is verified.
 *
 * - `seed-receive.json`: seed id, committed stream offset, the file being written (header and
 *   bytes written) when that offset is inside its data, how many ledger lines count, and once the
 *   stream is complete and verified, its summary (what seed-finalize-target requires).
 * - `seed-receive.ledger`: one JSON line {path, size, sha256} per verified file, in stream order,
 *   so a resumed receive can still compute the whole-stream digest. Lines past the counted ones
 *   (appended after the last state write) are cut on resume.
 *
 * A commit is durable and batched: it first makes durable what the committed offset covers (the
 * tree writer's files and the new ledger lines, in one go), then replaces the state file
 * atomically (temporary file, fdatasync, rename, fsync of the directory). A stored resume point
 * therefore never claims bytes a crash could lose. A state that is torn or garbage is refused
 * naming the file; a resume then starts over, a finalize refuses.
 *
 * One target receives one seed at a time, so the names are fixed; the seed id inside says whose
 * state it is. A seed over several lanes keeps one such pair per lane
 * (`seed-receive.lane<i>.json`, `seed-receive.lane<i>.ledger`, the lane count inside), each lane
 * committing on its own; a one-lane seed uses the names above, as before lanes existed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, truncate, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { SeedwireError } from '../../shared/errors.js';
import { combineLaneSummaries, type Lane } from '../../shared/lanes.js';
import { LIMITS } from '../../shared/limits.js';
import { ContentHashSchema, INCOMPLETE_MARKER, type ContentHashName } from '../../shared/ops.js';
import { syncDirectory } from '../mysql/marker.js';
import { TreeDigest, type DigestEntry, type TreeSummary } from './format.js';

export const RECEIVE_STATE_FILE = 'seed-receive.json';
export const RECEIVE_LEDGER_FILE = 'seed-receive.ledger';

const Count = z.number().int().nonnegative();
const SummarySchema = z.object({ files: Count, bytes: Count, digest: z.string() });
const RangeSchema = z.object({ offset: Count, length: Count });
const FilePointSchema = z.object({
  path: z.string(),
  mode: z.number().int(),
  mtimeMs: z.number().int(),
  size: Count,
  dataStart: Count,
  position: Count,
  /** Inside a range record (a lane's part of a large file): which part. */
  range: RangeSchema.optional(),
});
const StateSchema = z.object({
  version: z.literal(1),
  seedId: z.string(),
  committed: Count,
  current: FilePointSchema.nullable(),
  ledgerEntries: Count,
  done: SummarySchema.nullable(),
  updatedAt: z.string(),
  /** The seed's lane count, on a lane's state (absent: a one-lane seed). */
  lanes: z.number().int().min(2).optional(),
  /** How the ledger's and the current file's contents were hashed (absent: sha256). */
  contentHash: ContentHashSchema.optional(),
});
const LedgerEntrySchema = z.object({ path: z.string(), size: Count, sha256: z.string().regex(/^[0-9a-f]{64}$/), range: RangeSchema.optional() });

/** A resume point inside a file's data: its header and how many of its bytes are stored. */
export type FilePoint = z.infer<typeof FilePointSchema>;

/** Where a commit puts the resume point: a record boundary, or a position inside a file's data. */
export interface CommitPoint {
  committed: number;
  current: FilePoint | null;
}

export interface ResumePoint extends CommitPoint {
  /** The files verified before `committed`, in stream order. */
  entries: DigestEntry[];
  /** Set once the whole stream was received and verified. */
  done: TreeSummary | null;
}

export interface CheckpointOptions {
  /** The agent's stateDir. */
  stateDir: string;
  seedId: string;
  /** Continue from the stored resume point; false drops any stored state (of this lane only, with lanes). */
  resume: boolean;
  /** Which lane of a seed over several lanes; absent for a one-lane seed. */
  lane?: Lane;
  /** How this attempt hashes file contents; a stored point hashed otherwise is not resumed. @default 'sha256' */
  contentHash?: ContentHashName;
  /** Stream bytes between background commits. @default LIMITS.windowInitialBytes */
  commitEveryBytes?: number;
  /** Files written but not yet durable that force a commit. @default 64 */
  maxUnsyncedFiles?: number;
}

const DEFAULT_MAX_UNSYNCED_FILES = 64;

interface StatePaths {
  state: string;
  ledger: string;
  /** The lane count the state must carry (null: one lane). */
  lanes: number | null;
}

function pathsOf(stateDir: string, lane?: Lane): StatePaths {
  if (!lane) return { state: join(stateDir, RECEIVE_STATE_FILE), ledger: join(stateDir, RECEIVE_LEDGER_FILE), lanes: null };
  return { state: join(stateDir, `${RECEIVE_PREFIX}lane${lane.index}.json`), ledger: join(stateDir, `${RECEIVE_PREFIX}lane${lane.index}.ledger`), lanes: lane.count };
}

/** Every receive state file starts so (state, ledger, temporaries, lanes'). */
const RECEIVE_PREFIX = 'seed-receive.';

function unreadable(path: string, why: string, cause?: unknown): SeedwireError {
  return new SeedwireError('SEEDWIRE_VERIFY_FAILED', `the receive state ${path} is unreadable: ${why}`, cause === undefined ? {} : { cause });
}

interface Stored {
  point: ResumePoint;
  /** Length of the ledger's counted lines: what a resume keeps of the file. */
  ledgerBytes: number;
}

async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function readStored(stateDir: string, seedId: string, lane?: Lane, contentHash?: ContentHashName): Promise<Stored | null> {
  const paths = pathsOf(stateDir, lane);
  const text = await readTextOrNull(paths.state);
  if (text === null) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw unreadable(paths.state, `it is not JSON (${text.length} bytes; torn or overwritten?)`, error);
  }
  const parsed = StateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw unreadable(paths.state, `${issue?.path.join('.') || 'the document'}: ${issue?.message ?? 'does not match'}`);
  }
  const state = parsed.data;
  if (state.seedId !== seedId || (state.lanes ?? null) !== paths.lanes) return null;
  // The ledger's hashes and the current file's re-hash on resume are of one kind: an attempt with the other starts over.
  if (contentHash !== undefined && (state.contentHash ?? 'sha256') !== contentHash) {
    throw unreadable(paths.state, `it was hashed with ${state.contentHash ?? 'sha256'} and this attempt uses ${contentHash}`);
  }
  if (state.current && state.current.position > state.current.size) throw unreadable(paths.state, `the resume point of ${state.current.path} is past its size`);
  const ledger = (await readTextOrNull(paths.ledger)) ?? '';
  const entries: DigestEntry[] = [];
  let start = 0;
  while (entries.length < state.ledgerEntries) {
    const end = ledger.indexOf('\n', start);
    if (end < 0) throw unreadable(paths.ledger, `it holds ${entries.length} whole lines, the state counts ${state.ledgerEntries}`);
    let line: unknown;
    try {
      line = JSON.parse(ledger.slice(start, end));
    } catch (error) {
      throw unreadable(paths.ledger, `line ${entries.length + 1} is not JSON`, error);
    }
    const entry = LedgerEntrySchema.safeParse(line);
    if (!entry.success) throw unreadable(paths.ledger, `line ${entries.length + 1} is not a {path, size, sha256} entry`);
    entries.push(entry.data);
    start = end + 1;
  }
  return {
    point: { committed: state.committed, current: state.current, entries, done: state.done },
    ledgerBytes: Buffer.byteLength(ledger.slice(0, start)),
  };
}

/**
 * The stored resume point of `seedId`: null when there is none or it is another seed's;
 * SEEDWIRE_VERIFY_FAILED naming the file when the state or its ledger is torn or garbage.
 */
export async function readResumePoint(stateDir: string, seedId: string, lane?: Lane): Promise<ResumePoint | null> {
  return (await readStored(stateDir, seedId, lane))?.point ?? null;
}

/** Removes every receive state, every lane's: a fresh start, a finalized seed, or a cleaned-up one. */
export async function dropReceiveState(stateDir: string): Promise<void> {
  const paths = pathsOf(stateDir);
  await rm(paths.state, { force: true });
  // Lanes' states and temporary files of writes that never got renamed (a crash, an attempt that overlapped).
  for (const name of await readdir(stateDir).catch(() => [] as string[])) {
    if (name.startsWith(RECEIVE_PREFIX)) await rm(join(stateDir, name), { force: true });
  }
}

/** Removes one lane's state only: that lane starts over while the others keep theirs. */
async function dropLaneState(stateDir: string, lane: Lane): Promise<void> {
  const paths = pathsOf(stateDir, lane);
  await rm(paths.state, { force: true });
  const prefix = `${basename(paths.state)}.`;
  for (const name of await readdir(stateDir).catch(() => [] as string[])) {
    if (name.startsWith(prefix) && name.endsWith('.tmp')) await rm(join(stateDir, name), { force: true });
  }
  await rm(paths.ledger, { force: true });
}

async function writeState(stateDir: string, state: z.infer<typeof StateSchema>, lane?: Lane): Promise<void> {
  const { state: path } = pathsOf(stateDir, lane);
  // A name of its own: an older attempt still finishing its last commit, or a drop running at the
  // same time, must not take this write's file away before its rename (seen as ENOENT under load).
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(state));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDirectory(stateDir);
}

/** Throws SEEDWIRE_VERIFY_FAILED (`mismatch` says how) unless the summaries agree on what `theirs` states. */
function verifyDigest(mine: TreeSummary, theirs: { digest: string; files?: number; bytes?: number }, mismatch: () => string): void {
  const agrees = mine.digest === theirs.digest && (theirs.files === undefined || theirs.files === mine.files) && (theirs.bytes === undefined || theirs.bytes === mine.bytes);
  if (!agrees) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', mismatch());
}

/**
 * Before finalize: the seed was received whole and its digest is the source's. Returns the
 * stored summary; refuses (SEEDWIRE_VERIFY_FAILED) otherwise, the marker staying in place.
 */
export async function requireReceived(stateDir: string, seedId: string, digest: string, lanes = 1): Promise<TreeSummary> {
  const summaries: TreeSummary[] = [];
  for (let index = 0; index < lanes; index += 1) {
    let point: ResumePoint | null;
    try {
      point = await readResumePoint(stateDir, seedId, lanes > 1 ? { index, count: lanes } : undefined);
    } catch (error) {
      if (!(error instanceof SeedwireError)) throw error;
      throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `${error.message}; the target keeps its ${INCOMPLETE_MARKER}`, { cause: error });
    }
    const laneDone = point?.done;
    if (!laneDone) {
      const which = lanes > 1 ? ` (lane ${index} of ${lanes})` : '';
      throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `seed ${seedId} has not been received completely${which}; the target keeps its ${INCOMPLETE_MARKER}`);
    }
    summaries.push(laneDone);
  }
  const done = combineLaneSummaries(summaries);
  verifyDigest(done, { digest }, () => `received digest ${done.digest} differs from the source's ${digest}; the target keeps its ${INCOMPLETE_MARKER}`);
  return done;
}

/**
 * A stream that cannot resume (a backup's xbstream) arrived whole with this summary: record it
 * as complete, which is what seed-finalize-target requires.
 */
export async function recordReceived(stateDir: string, seedId: string, summary: TreeSummary): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  await rm(pathsOf(stateDir).ledger, { force: true });
  await writeState(stateDir, { version: 1, seedId, committed: summary.bytes, current: null, ledgerEntries: 0, done: summary, updatedAt: new Date().toISOString() });
}

/**
 * Opens the checkpoint of a tree receive: with `resume`, the stored point of this seed (its
 * ledger cut to the counted lines); otherwise, or when there is none or it cannot be read, a
 * fresh start with every stored state dropped (`discarded` says why a stored one was not used).
 */
export async function openCheckpoint(options: CheckpointOptions): Promise<ReceiveCheckpoint> {
  const { stateDir } = options;
  await mkdir(stateDir, { recursive: true });
  let resumed: ResumePoint | null = null;
  let discarded: string | null = null;
  if (options.resume) {
    try {
      const stored = await readStored(stateDir, options.seedId, options.lane, options.contentHash ?? 'sha256');
      if (stored) {
        await truncate(pathsOf(stateDir, options.lane).ledger, stored.ledgerBytes).catch((error: unknown) => {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        });
        resumed = stored.point;
      }
    } catch (error) {
      if (!(error instanceof SeedwireError)) throw error;
      discarded = error.message;
    }
  }
  if (!resumed) await (options.lane ? dropLaneState(stateDir, options.lane) : dropReceiveState(stateDir));
  const ledger = await open(pathsOf(stateDir, options.lane).ledger, 'a', 0o600);
  return new ReceiveCheckpoint(options, resumed, discarded, ledger);
}

export class ReceiveCheckpoint {
  /** The digest over the files verified so far; its entry count is the ledger's line count. */
  private readonly digest = new TreeDigest();
  private pendingLedger = '';
  private committedOffset: number;
  /** The commit whose state write is last in line (state writes happen in call order). */
  private lastCommit: Promise<void> = Promise.resolve();
  private background: Promise<void> | null = null;
  private backgroundFrom = 0;
  private failure: unknown = null;
  private readonly everyBytes: number;
  private readonly maxUnsynced: number;

  constructor(
    private readonly options: CheckpointOptions,
    /** The stored point this receive continues from; null on a fresh start. */
    readonly resumed: ResumePoint | null,
    /** Why a stored state was not used (torn or garbage), or null. */
    readonly discarded: string | null,
    private ledger: FileHandle | null,
  ) {
    this.committedOffset = resumed?.committed ?? 0;
    this.backgroundFrom = this.committedOffset;
    for (const entry of resumed?.entries ?? []) this.addVerified(entry);
    this.pendingLedger = '';
    this.everyBytes = options.commitEveryBytes ?? LIMITS.windowInitialBytes;
    this.maxUnsynced = options.maxUnsyncedFiles ?? DEFAULT_MAX_UNSYNCED_FILES;
  }

  /** Which lane of a seed this receive is (absent for a one-lane seed). */
  get lane(): Lane | undefined {
    return this.options.lane;
  }

  /** Stream offset durably stored with a resume point. */
  get committed(): number {
    return this.committedOffset;
  }

  /** File bytes of the files verified so far. */
  get verifiedBytes(): number {
    return this.digest.bytes;
  }

  /** A file whose trailer matched, in stream order: it joins the digest and the next commit's ledger lines. */
  addVerified(entry: DigestEntry): void {
    this.digest.add(entry);
    const line = entry.range ? { path: entry.path, size: entry.size, sha256: entry.sha256, range: entry.range } : { path: entry.path, size: entry.size, sha256: entry.sha256 };
    this.pendingLedger += `${JSON.stringify(line)}\n`;
  }

  /** The end record arrived: the stream's own digest must be the sender's. Returns the summary. */
  verifyEnd(sender: TreeSummary): TreeSummary {
    const mine = this.digest.summary();
    verifyDigest(
      mine,
      sender,
      () =>
        `seed digest mismatch: received ${mine.files} files, ${mine.bytes} bytes, digest ${mine.digest}; the sender says ${sender.files} files, ${sender.bytes} bytes, digest ${sender.digest}`,
    );
    return mine;
  }

  /**
   * Stores `point` once `durable` (the writer making what the point covers durable) and the new
   * ledger lines are on disk. What the point covers is captured when this is called.
   */
  commit(point: CommitPoint, durable: Promise<void>, done: TreeSummary | null = null): Promise<void> {
    // After a failed commit the ledger may lack lines a later state would count: the stored
    // point stays the one before the failure.
    if (this.failure !== null) {
      durable.catch(() => undefined);
      return Promise.reject(this.failure);
    }
    const ledgerText = this.pendingLedger;
    this.pendingLedger = '';
    const ledgerEntries = this.digest.entries;
    const ledger = this.ledger;
    const previous = this.lastCommit;
    // Ledger lines are appended in call order: after the previous commit is done with the file.
    const syncLedger = (async () => {
      await previous;
      if (!ledger) throw new SeedwireError('SEEDWIRE_INTERNAL', 'receive checkpoint used after close');
      if (ledgerText) await ledger.write(ledgerText);
      await ledger.datasync();
    })();
    const commit = (async () => {
      const results = await Promise.allSettled([durable, syncLedger]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const { seedId, stateDir, lane } = this.options;
      const contentHash = this.options.contentHash ?? 'sha256';
      const state = {
        version: 1 as const,
        seedId,
        committed: point.committed,
        current: point.current,
        ledgerEntries,
        done,
        updatedAt: new Date().toISOString(),
        ...(contentHash === 'sha256' ? {} : { contentHash }),
      };
      await writeState(stateDir, lane ? { ...state, lanes: lane.count } : state, lane);
      this.committedOffset = Math.max(this.committedOffset, point.committed);
    })();
    commit.catch((error: unknown) => {
      this.failure ??= error;
    });
    this.lastCommit = commit.catch(() => undefined);
    return commit;
  }

  /**
   * Batching: starts `commit` in the background once `commitEveryBytes` of stream or too many
   * files not yet durable went by, unless one is still running. A commit's failure is kept and
   * thrown by throwIfFailed() or settle().
   */
  commitWhenDue(offset: number, unsyncedFiles: number, commit: () => Promise<void>): void {
    if (this.background !== null) return;
    if (offset - this.backgroundFrom < this.everyBytes && unsyncedFiles < this.maxUnsynced) return;
    this.backgroundFrom = offset;
    this.background = commit()
      .catch(() => undefined) // kept by commit() itself
      .finally(() => {
        this.background = null;
      });
  }

  throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }

  /** Waits for a background commit; throws its failure. */
  async settle(): Promise<void> {
    await this.background;
    this.throwIfFailed();
  }

  /** Whether a commit failed (the stored point is then the one before it). */
  get failed(): boolean {
    return this.failure !== null;
  }

  async close(): Promise<void> {
    await this.background;
    const ledger = this.ledger;
    this.ledger = null;
    await ledger?.close();
  }
}
