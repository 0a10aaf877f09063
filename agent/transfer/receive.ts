/**
 * The receiving side of a seed: parses the seed stream (format.ts) incrementally from a
 * ReceivePort and writes the tree under `root` through SafeTree (no path escapes).
 *
 * Flow control: credit is granted as data is written, up to `window` bytes past what has been
 * handled; the window grows from LIMITS.windowInitialBytes to windowMaxBytes. So the port never
 * queues more than one window and memory stays bounded whatever the sender's speed.
 *
 * Resume: at least once per window (in the background, without stalling the stream), and on
 * abort or link drop, the files written so far are fdatasync'd and the resume point is stored
 * (receive-state.ts). A resume point is always a record boundary or a position inside a file's
 * data, never inside a header. Resuming truncates the current file to the stored length and
 * re-hashes that prefix, so each file's trailer check still covers all of its bytes.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import type { ReceivePort } from '../streams/types.js';
import { createChunkCodec, type ChunkCodec } from './compress.js';
import {
  MAX_HEADER_JSON_BYTES,
  parseRecordJson,
  parseRecordPrefix,
  RECORD_PREFIX_BYTES,
  TRAILER_BYTES,
  TreeDigest,
  type DigestEntry,
  type FileHeader,
  type RecordHeader,
  type RecordType,
  type TreeSummary,
} from './format.js';
import { dropReceiveState, ledgerLine, loadLedger, readReceiveState, receiveStatePaths, writeReceiveState, type ReceiveState } from './receive-state.js';
import { SafeTree } from './safe-tree.js';

export interface ResumeStateOptions {
  /** The agent's stateDir. */
  dir: string;
  seedId: string;
  /** Continue from the stored resume point; false discards any stored state. */
  resume: boolean;
}

export interface ReceiveProgress {
  /** Stream bytes written to files (what credit is granted against). */
  received: number;
  /** Stream bytes durably stored with a resume point. */
  committed: number;
}

export interface ReceiveTreeOptions {
  root: string;
  port: ReceivePort;
  resumeState: ResumeStateOptions;
  signal: AbortSignal;
  /** Called once with the offset the sender must start from (0, or the resume point). */
  onStart?: (offset: number) => void;
  onProgress?: (progress: ReceiveProgress) => void;
  windowInitialBytes?: number;
  windowMaxBytes?: number;
}

/** Files closed but not yet fdatasync'd are kept open up to this many, then synced together. */
const MAX_UNSYNCED_FILES = 64;

type Phase = 'prefix' | 'json' | 'data' | 'trailer' | 'done';

/** Writes of one file in flight at once: the next chunk is hashed while earlier ones are written. */
const MAX_PENDING_WRITES = 4;

interface CurrentFile {
  /** Positioned writes issued and not yet known done (oldest first). */
  pending: Array<Promise<void>>;
  header: FileHeader;
  fh: FileHandle;
  hash: Hash;
  dataStart: number;
  written: number;
}

export async function receiveTree(options: ReceiveTreeOptions): Promise<TreeSummary> {
  const receiver = new TreeReceiver(options);
  return receiver.run();
}

class TreeReceiver {
  private readonly tree: SafeTree;
  private readonly port: ReceivePort;
  private readonly signal: AbortSignal;
  private readonly stateDir: string;
  private readonly seedId: string;
  private readonly windowMax: number;
  private window: number;
  private windowGrownAt = 0;

  private phase: Phase = 'prefix';
  /** Next stream offset expected. */
  private offset = 0;
  /** Where the record being parsed starts. */
  private recordStart = 0;
  private readonly acc = Buffer.allocUnsafe(Math.max(MAX_HEADER_JSON_BYTES, TRAILER_BYTES, RECORD_PREFIX_BYTES));
  private accFill = 0;
  private need = RECORD_PREFIX_BYTES;
  private recordType: RecordType = 'end';
  private current: CurrentFile | null = null;
  private readonly ledger: DigestEntry[] = [];
  private ledgerPending = '';
  private ledgerFh: FileHandle | null = null;
  private unsynced: FileHandle[] = [];
  private summary: TreeSummary | null = null;

  private committed = 0;
  private persisting: Promise<void> | null = null;
  private persistError: unknown = null;

  constructor(private readonly options: ReceiveTreeOptions) {
    this.tree = new SafeTree(options.root);
    this.port = options.port;
    this.signal = options.signal;
    this.stateDir = options.resumeState.dir;
    this.seedId = options.resumeState.seedId;
    this.window = options.windowInitialBytes ?? LIMITS.windowInitialBytes;
    this.windowMax = Math.max(this.window, options.windowMaxBytes ?? LIMITS.windowMaxBytes);
  }

  async run(): Promise<TreeSummary> {
    const onAbort = (): void => this.port.close();
    this.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const done = await this.start();
      if (done) return done;
      await this.consumeStream();
      return await this.finish();
    } catch (error) {
      await this.stopAfterFailure(error);
      if (this.signal.aborted && !(error instanceof SeedwireError && isFatal(error))) {
        throw new SeedwireError('SEEDWIRE_CANCELED', `receive canceled at stream offset ${this.committed}`, { cause: error });
      }
      throw error;
    } finally {
      this.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Loads or resets the resume point; returns the summary when the stream was already complete. */
  private async start(): Promise<TreeSummary | null> {
    await mkdir(this.stateDir, { recursive: true });
    const state = this.options.resumeState.resume ? await readReceiveState(this.stateDir, this.seedId) : null;
    const ledger = state ? await loadLedger(this.stateDir, state.ledgerEntries) : null;
    if (state && ledger) {
      if (state.done) {
        this.options.onStart?.(state.committed);
        return state.done;
      }
      this.ledger.push(...ledger);
      this.offset = state.committed;
      this.recordStart = state.committed;
      if (state.current) await this.reopenCurrent(state.current);
    } else {
      await dropReceiveState(this.stateDir);
    }
    this.committed = this.offset;
    this.ledgerFh = await open(receiveStatePaths(this.stateDir).ledger, 'a', 0o600);
    await this.persistNow();
    this.options.onStart?.(this.offset);
    this.port.grant(this.offset + this.window);
    return null;
  }

  private async reopenCurrent(saved: NonNullable<ReceiveState['current']>): Promise<void> {
    const header: FileHeader = { type: 'file', path: saved.path, mode: saved.mode, mtimeMs: saved.mtimeMs, size: saved.size };
    const fh = await this.tree.openFile(saved.path, false);
    await fh.truncate(saved.position);
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(4 * 1024 * 1024, Math.max(1, saved.position)));
    let done = 0;
    while (done < saved.position) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, saved.position - done), done);
      if (bytesRead === 0) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `${saved.path} is shorter than its resume point`);
      hash.update(buf.subarray(0, bytesRead));
      done += bytesRead;
    }
    this.current = { pending: [], header, fh, hash, dataStart: saved.dataStart, written: saved.position };
    this.phase = saved.position < saved.size ? 'data' : 'trailer';
    this.accFill = 0;
    this.need = TRAILER_BYTES;
  }

  private async consumeStream(): Promise<void> {
    const codecs = new Map<string, ChunkCodec>();
    for await (const chunk of this.port.chunks()) {
      this.signal.throwIfAborted();
      if (this.persistError) throw this.persistError;
      if (chunk.rawLength > LIMITS.maxMessageBytes * 4) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame of ${chunk.rawLength} raw bytes`);
      if (chunk.offset + chunk.rawLength <= this.offset) continue; // a duplicate from before a resume
      if (chunk.offset > this.offset) {
        throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame at offset ${chunk.offset} leaves a gap after ${this.offset}`);
      }
      let codec = codecs.get(chunk.codec);
      if (!codec) {
        codec = createChunkCodec(chunk.codec);
        codecs.set(chunk.codec, codec);
      }
      const raw = await codec.decompress(chunk.payload, chunk.rawLength);
      await this.consume(raw, this.offset - chunk.offset);
      if (this.phase === 'done') return;
      this.afterChunk();
    }
    this.signal.throwIfAborted();
    throw new SeedwireError('SEEDWIRE_DISCONNECTED', `seed stream ended at offset ${this.offset} before its end record`);
  }

  private afterChunk(): void {
    if (this.offset - this.windowGrownAt >= this.window && this.window < this.windowMax) {
      this.window = Math.min(this.windowMax, this.window * 2);
      this.windowGrownAt = this.offset;
    }
    this.port.grant(this.offset + this.window);
    const due = this.offset - this.committed >= (this.options.windowInitialBytes ?? LIMITS.windowInitialBytes) || this.unsynced.length >= MAX_UNSYNCED_FILES;
    if (due && this.persisting === null) {
      this.persisting = this.persistNow()
        .catch((error: unknown) => {
          this.persistError = error;
        })
        .finally(() => {
          this.persisting = null;
        });
    }
    this.options.onProgress?.({ received: this.offset, committed: this.committed });
  }

  /** Feeds raw stream bytes starting at `pos` of `raw` (which begins at stream offset this.offset - pos). */
  private async consume(raw: Buffer, pos: number): Promise<void> {
    while (pos < raw.length) {
      let n: number;
      switch (this.phase) {
        case 'prefix':
        case 'json':
        case 'trailer': {
          n = Math.min(this.need - this.accFill, raw.length - pos);
          raw.copy(this.acc, this.accFill, pos, pos + n);
          this.accFill += n;
          this.offset += n;
          if (this.accFill === this.need) await this.completeSmallPart();
          break;
        }
        case 'data': {
          const cur = this.current as CurrentFile;
          n = Math.min(cur.header.size - cur.written, raw.length - pos);
          const slice = raw.subarray(pos, pos + n);
          const write = writeFully(cur.fh, slice, cur.written);
          write.catch(() => undefined); // awaited below, in completeFile or in persistNow
          cur.pending.push(write);
          cur.hash.update(slice);
          while (cur.pending.length >= MAX_PENDING_WRITES) await cur.pending.shift();
          cur.written += n;
          this.offset += n;
          if (cur.written === cur.header.size) this.expect('trailer', TRAILER_BYTES);
          break;
        }
        case 'done':
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `seed stream carries bytes after its end record (offset ${this.offset})`);
      }
      pos += n;
    }
  }

  private expect(phase: Phase, need: number): void {
    this.phase = phase;
    this.need = need;
    this.accFill = 0;
    if (phase === 'prefix') this.recordStart = this.offset;
  }

  private async completeSmallPart(): Promise<void> {
    switch (this.phase) {
      case 'prefix': {
        const { type, jsonLength } = parseRecordPrefix(this.acc.subarray(0, RECORD_PREFIX_BYTES));
        this.recordType = type;
        this.expect('json', jsonLength);
        return;
      }
      case 'json':
        await this.startRecord(parseRecordJson(this.recordType, this.acc.subarray(0, this.need)));
        return;
      case 'trailer':
        await this.completeFile(Buffer.from(this.acc.subarray(0, TRAILER_BYTES)));
        return;
      default:
        return;
    }
  }

  private async startRecord(header: RecordHeader): Promise<void> {
    switch (header.type) {
      case 'dir':
        await this.tree.makeDir(header.path, header.mode);
        this.expect('prefix', RECORD_PREFIX_BYTES);
        return;
      case 'symlink':
        await this.tree.makeSymlink(header.path, header.target);
        this.expect('prefix', RECORD_PREFIX_BYTES);
        return;
      case 'file': {
        const fh = await this.tree.openFile(header.path, true);
        this.current = { pending: [], header, fh, hash: createHash('sha256'), dataStart: this.offset, written: 0 };
        if (header.size > 0) this.expect('data', 0);
        else this.expect('trailer', TRAILER_BYTES);
        return;
      }
      case 'end': {
        const own = new TreeDigest();
        for (const entry of this.ledger) own.add(entry);
        const mine = own.summary();
        if (mine.files !== header.files || mine.bytes !== header.bytes || mine.digest !== header.digest) {
          throw new SeedwireError(
            'SEEDWIRE_VERIFY_FAILED',
            `seed digest mismatch: received ${mine.files} files, ${mine.bytes} bytes, digest ${mine.digest}; the sender says ${header.files} files, ${header.bytes} bytes, digest ${header.digest}`,
          );
        }
        this.summary = mine;
        this.phase = 'done';
        return;
      }
    }
  }

  private async completeFile(trailer: Buffer): Promise<void> {
    const cur = this.current as CurrentFile;
    await Promise.all(cur.pending.splice(0));
    const sha = cur.hash.digest();
    if (!sha.equals(trailer)) {
      throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `checksum mismatch for ${cur.header.path}: received data hashes to ${sha.toString('hex')}, the sender's is ${trailer.toString('hex')}`, {
        details: { path: cur.header.path },
      });
    }
    await cur.fh.chmod(cur.header.mode);
    const mtime = cur.header.mtimeMs / 1000;
    await cur.fh.utimes(mtime, mtime);
    this.unsynced.push(cur.fh);
    const entry = { path: cur.header.path, size: cur.header.size, sha256: sha.toString('hex') };
    this.ledger.push(entry);
    this.ledgerPending += ledgerLine(entry);
    this.current = null;
    this.expect('prefix', RECORD_PREFIX_BYTES);
  }

  /**
   * Makes everything handled so far durable and records the resume point. Runs concurrently
   * with the stream: it captures the point first and syncs only what that point covers
   * (fdatasync of the current file also covers later writes, which is harmless).
   */
  private async persistNow(done: TreeSummary | null = null): Promise<void> {
    const state = this.capturePoint(done);
    const syncs: Array<Promise<void>> = [];
    const closing = this.unsynced.splice(0);
    for (const fh of closing) syncs.push(fh.datasync().finally(() => fh.close()));
    if (this.current && state.current) {
      // The point covers writes issued so far: let them land, then sync.
      const { fh, pending } = this.current;
      const issued = [...pending];
      syncs.push(Promise.all(issued).then(() => fh.datasync()));
    }
    const ledgerText = this.ledgerPending;
    this.ledgerPending = '';
    const ledgerFh = this.ledgerFh;
    if (ledgerFh) {
      syncs.push(
        (async () => {
          if (ledgerText) await ledgerFh.write(ledgerText);
          await ledgerFh.datasync();
        })(),
      );
    }
    const results = await Promise.allSettled(syncs);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    await writeReceiveState(this.stateDir, state);
    this.committed = Math.max(this.committed, state.committed);
  }

  private capturePoint(done: TreeSummary | null): ReceiveState {
    const base = { version: 1 as const, seedId: this.seedId, ledgerEntries: this.ledger.length, done, updatedAt: new Date().toISOString() };
    const cur = this.current;
    if ((this.phase === 'data' || this.phase === 'trailer') && cur) {
      const { path, mode, mtimeMs, size } = cur.header;
      return { ...base, committed: cur.dataStart + cur.written, current: { path, mode, mtimeMs, size, dataStart: cur.dataStart, position: cur.written } };
    }
    // In a header (or a file record whose header was just parsed): resume from the record's start.
    return { ...base, committed: this.phase === 'done' ? this.offset : this.recordStart, current: null };
  }

  private async finish(): Promise<TreeSummary> {
    const summary = this.summary as TreeSummary;
    await this.persisting;
    if (this.persistError) throw this.persistError;
    await this.persistNow(summary);
    await this.ledgerFh?.close();
    this.ledgerFh = null;
    this.options.onProgress?.({ received: this.offset, committed: this.committed });
    return summary;
  }

  /** On abort or link drop, store the resume point; after a verify or path failure, just stop. */
  private async stopAfterFailure(error: unknown): Promise<void> {
    await this.persisting;
    const fatal = error instanceof SeedwireError && isFatal(error);
    if (!fatal && this.persistError === null && this.phase !== 'done') {
      try {
        await this.persistNow();
      } catch {
        // the stored point stays the previous one, which is still valid
      }
    }
    const handles = [...this.unsynced.splice(0), ...(this.current ? [this.current.fh] : []), ...(this.ledgerFh ? [this.ledgerFh] : [])];
    this.current = null;
    this.ledgerFh = null;
    await Promise.allSettled(handles.map((fh) => fh.close()));
  }
}

/** Failures that mean the stored data is wrong (not just interrupted): no resume point is stored. */
function isFatal(error: SeedwireError): boolean {
  return ['SEEDWIRE_VERIFY_FAILED', 'SEEDWIRE_PATH_ESCAPE', 'SEEDWIRE_BAD_FRAME', 'SEEDWIRE_PROTOCOL_VERSION'].includes(error.code);
}

async function writeFully(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
