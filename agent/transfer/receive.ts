/**
 * The receiving side of a seed: decodes the seed stream (decoder.ts, pure) from a ReceivePort and
 * writes the tree under `root` through SafeTree, which owns path safety (safe-tree.ts).
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
import { SeedStreamDecoder, type SeedEvent } from './decoder.js';
import { TreeDigest, type DigestEntry, type EndHeader, type FileHeader, type TreeSummary } from './format.js';
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
  /** Most file bytes the stream may declare (what the seed's precheck allowed); default no limit. */
  maxBytes?: number;
  /** Accept symlinks pointing outside `root` (agent config receive.allowExternalSymlinks). */
  allowExternalSymlinks?: boolean;
}

/** Files closed but not yet fdatasync'd are kept open up to this many, then synced together. */
const MAX_UNSYNCED_FILES = 64;

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

  private decoder: SeedStreamDecoder;
  /** Stream offset just past the last record fully handled (a resume point when no file is open). */
  private handledUpTo = 0;
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
    this.tree = new SafeTree(options.root, { allowExternalSymlinks: options.allowExternalSymlinks ?? false });
    this.decoder = new SeedStreamDecoder({ maxBytes: options.maxBytes ?? null });
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
      const declaredBefore = ledger.reduce((sum, e) => sum + e.size, 0) + (state.current?.size ?? 0);
      const inFile = state.current ? await this.reopenCurrent(state.current) : null;
      this.decoder = new SeedStreamDecoder({ offset: state.committed, maxBytes: this.options.maxBytes ?? null, declaredBefore, ...(inFile ? { inFile } : {}) });
    } else {
      await dropReceiveState(this.stateDir);
    }
    this.committed = this.decoder.offset;
    this.handledUpTo = this.decoder.offset;
    this.ledgerFh = await open(receiveStatePaths(this.stateDir).ledger, 'a', 0o600);
    await this.persistNow();
    this.options.onStart?.(this.decoder.offset);
    this.port.grant(this.decoder.offset + this.window);
    return null;
  }

  /** Reopens the file a resume point is inside of, re-hashing what it already holds. */
  private async reopenCurrent(saved: NonNullable<ReceiveState['current']>): Promise<{ header: FileHeader; written: number }> {
    const header: FileHeader = { type: 'file', path: saved.path, mode: saved.mode, mtimeMs: saved.mtimeMs, size: saved.size };
    if (saved.position > saved.size) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `the resume point of ${saved.path} is past its size`);
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
    return { header, written: saved.position };
  }

  private async consumeStream(): Promise<void> {
    const codecs = new Map<string, ChunkCodec>();
    for await (const chunk of this.port.chunks()) {
      this.signal.throwIfAborted();
      if (this.persistError) throw this.persistError;
      if (chunk.rawLength > LIMITS.maxMessageBytes * 4) throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame of ${chunk.rawLength} raw bytes`);
      const offset = this.decoder.offset;
      if (chunk.offset + chunk.rawLength <= offset) continue; // a duplicate from before a resume
      if (chunk.offset > offset) {
        throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame at offset ${chunk.offset} leaves a gap after ${offset}`);
      }
      let codec = codecs.get(chunk.codec);
      if (!codec) {
        codec = createChunkCodec(chunk.codec);
        codecs.set(chunk.codec, codec);
      }
      const raw = await codec.decompress(chunk.payload, chunk.rawLength);
      await this.consume(raw.subarray(offset - chunk.offset));
      if (this.decoder.done) return;
      this.afterChunk();
    }
    this.signal.throwIfAborted();
    this.decoder.finish();
  }

  private afterChunk(): void {
    const offset = this.decoder.offset;
    if (offset - this.windowGrownAt >= this.window && this.window < this.windowMax) {
      this.window = Math.min(this.windowMax, this.window * 2);
      this.windowGrownAt = offset;
    }
    this.port.grant(offset + this.window);
    const due = offset - this.committed >= (this.options.windowInitialBytes ?? LIMITS.windowInitialBytes) || this.unsynced.length >= MAX_UNSYNCED_FILES;
    if (due && this.persisting === null) {
      this.persisting = this.persistNow()
        .catch((error: unknown) => {
          this.persistError = error;
        })
        .finally(() => {
          this.persisting = null;
        });
    }
    this.options.onProgress?.({ received: offset, committed: this.committed });
  }

  /** Decodes raw stream bytes (they start at the decoder's offset) and handles each event in turn. */
  private async consume(raw: Buffer): Promise<void> {
    this.decoder.push(raw);
    for (let event = this.decoder.next(); event !== null; event = this.decoder.next()) {
      await this.handle(event);
      if (event.kind !== 'data' && this.current === null) this.handledUpTo = event.end;
      if (event.kind === 'end' && this.decoder.pending > 0) this.decoder.next(); // throws: bytes after the end
    }
  }

  private async handle(event: SeedEvent): Promise<void> {
    switch (event.kind) {
      case 'entry': {
        const { header } = event;
        if (header.type === 'dir') await this.tree.makeDir(header.path, header.mode);
        else if (header.type === 'symlink') await this.tree.makeSymlink(header.path, header.target);
        else {
          const fh = await this.tree.openFile(header.path, true);
          this.current = { pending: [], header, fh, hash: createHash('sha256'), dataStart: event.end, written: 0 };
        }
        return;
      }
      case 'data': {
        const cur = this.current as CurrentFile;
        const write = writeFully(cur.fh, event.bytes, cur.written);
        write.catch(() => undefined); // awaited below, in completeFile or in persistNow
        cur.pending.push(write);
        cur.hash.update(event.bytes);
        cur.written += event.bytes.length;
        while (cur.pending.length >= MAX_PENDING_WRITES) await cur.pending.shift();
        return;
      }
      case 'trailer':
        await this.completeFile(event.sha256);
        return;
      case 'end':
        this.checkEnd(event.header);
        return;
    }
  }

  private checkEnd(header: EndHeader): void {
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
    await this.tree.setFileMode(cur.fh, cur.header.mode);
    const mtime = cur.header.mtimeMs / 1000;
    await cur.fh.utimes(mtime, mtime);
    this.unsynced.push(cur.fh);
    const entry = { path: cur.header.path, size: cur.header.size, sha256: sha.toString('hex') };
    this.ledger.push(entry);
    this.ledgerPending += ledgerLine(entry);
    this.current = null;
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
    if (cur) {
      const { path, mode, mtimeMs, size } = cur.header;
      return { ...base, committed: cur.dataStart + cur.written, current: { path, mode, mtimeMs, size, dataStart: cur.dataStart, position: cur.written } };
    }
    // Between records: resume after the last one handled.
    return { ...base, committed: this.handledUpTo, current: null };
  }

  private async finish(): Promise<TreeSummary> {
    const summary = this.summary as TreeSummary;
    await this.persisting;
    if (this.persistError) throw this.persistError;
    await this.persistNow(summary);
    await this.ledgerFh?.close();
    this.ledgerFh = null;
    this.options.onProgress?.({ received: this.decoder.offset, committed: this.committed });
    return summary;
  }

  /** On abort or link drop, store the resume point; after a verify or path failure, just stop. */
  private async stopAfterFailure(error: unknown): Promise<void> {
    await this.persisting;
    const fatal = error instanceof SeedwireError && isFatal(error);
    if (!fatal && this.persistError === null && this.summary === null) {
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
