/**
 * The receiving side of a tree seed, composed of its parts: data frames from a ReceivePort are
 * decompressed (compress.ts), decoded (decoder.ts, pure), written by the tree writer
 * (tree-writer.ts, path safety and per-file checksums), made resumable by the checkpoint
 * (checkpoint.ts, the resume point and the whole-stream digest) and paced by the credit window
 * (credit.ts).
 *
 * Resume: at least once per window (in the background, without stalling the stream), and on
 * abort or link drop, a commit makes what was written durable and stores the resume point. A
 * resume point is always a record boundary or a position inside a file's data, never inside a
 * header; the sender starts exactly there.
 */
import { SeedwireError } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import { RECEIVE_POOL, type BufferHold } from '../streams/receive-buffers.js';
import type { ReceivePort } from '../streams/types.js';
import type { ReceiveCheckpoint } from './checkpoint.js';
import { ChunkInflater } from './compress.js';
import { CreditWindow, isFatalReceiveError, receiveStopError } from './credit.js';
import { SeedStreamDecoder, type SeedEvent } from './decoder.js';
import { dataLength, type DataHeader, type TreeSummary } from './format.js';
import { TreeWriter } from './tree-writer.js';
import type { ContentHashName } from './content-hash.js';

export interface ReceiveProgress {
  /** Stream bytes written (what credit is granted against). */
  received: number;
  /** Stream bytes durably stored with a resume point. */
  committed: number;
  /** The credit window granted past `received` (credit.ts). */
  window?: number;
}

export interface ReceiveTreeOptions {
  root: string;
  port: ReceivePort;
  /** Opened by the caller (openCheckpoint: resume or fresh start); receiveTree closes it. */
  checkpoint: ReceiveCheckpoint;
  signal: AbortSignal;
  /** Called once with the offset the sender must start from (0, or the resume point). */
  onStart?: (offset: number) => void;
  onProgress?: (progress: ReceiveProgress) => void;
  /** @default LIMITS.windowInitialBytes */
  windowInitialBytes?: number;
  /** @default LIMITS.windowMaxBytes shared by the seed's lanes (perLaneWindowMax) */
  windowMaxBytes?: number;
  /** Most file bytes the stream may declare (what the seed's precheck allowed); default no limit. */
  maxBytes?: number;
  /** Accept symlinks pointing outside `root` (agent config receive.allowExternalSymlinks). */
  allowExternalSymlinks?: boolean;
  /** How file contents are hashed (the seed's choice; the checkpoint must have been opened with the same); default sha256. */
  contentHash?: ContentHashName;
}

/**
 * The largest window of one lane: the seed's window shared by its lanes, never below the initial
 * window. Lanes run side by side, so together they still cover LIMITS.windowMaxBytes of
 * bandwidth-delay product, while the receiver holds no more than one seed's window in all (each
 * lane growing to the full window took peak RSS past its target: docs/performance.md).
 */
export function perLaneWindowMax(lanes: number): number {
  return Math.max(LIMITS.windowInitialBytes, Math.floor(LIMITS.windowMaxBytes / Math.max(1, lanes)));
}

export async function receiveTree(options: ReceiveTreeOptions): Promise<TreeSummary> {
  const done = options.checkpoint.resumed?.done;
  if (done) {
    // Received and verified before: nothing more to send.
    await options.checkpoint.close();
    options.onStart?.(options.checkpoint.committed);
    return done;
  }
  return new TreeReceiver(options).run();
}

class TreeReceiver {
  private readonly checkpoint: ReceiveCheckpoint;
  private readonly writer: TreeWriter;
  private readonly credit: CreditWindow;
  private readonly inflater = new ChunkInflater(RECEIVE_POOL);
  private decoder = new SeedStreamDecoder();
  /** Stream offset just past the last record fully handled (a resume point when no file is open). */
  private handledUpTo = 0;
  private summary: TreeSummary | null = null;

  constructor(private readonly options: ReceiveTreeOptions) {
    this.checkpoint = options.checkpoint;
    this.writer = new TreeWriter(options.root, { allowExternalSymlinks: options.allowExternalSymlinks ?? false, contentHash: options.contentHash ?? 'sha256' });
    const maxBytes = options.windowMaxBytes ?? perLaneWindowMax(options.checkpoint.lane?.count ?? 1);
    this.credit = new CreditWindow(options.port, { initialBytes: options.windowInitialBytes, maxBytes });
  }

  async run(): Promise<TreeSummary> {
    const { port, signal } = this.options;
    const onAbort = (): void => port.close();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.start();
      await this.consumeStream();
      return await this.finish();
    } catch (error) {
      await this.stopAfterFailure(error);
      throw receiveStopError(error, signal, `receive canceled at stream offset ${this.checkpoint.committed}`);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Positions the decoder at the resume point (or 0), stores it, and grants the first credit. */
  private async start(): Promise<void> {
    const point = this.checkpoint.resumed;
    const offset = point?.committed ?? 0;
    let inFile: { header: DataHeader; written: number } | undefined;
    if (point?.current) inFile = { header: await this.writer.resumeFile(point.current), written: point.current.position };
    this.decoder = new SeedStreamDecoder({
      offset,
      maxBytes: this.options.maxBytes ?? null,
      declaredBefore: this.checkpoint.verifiedBytes + (inFile ? dataLength(inFile.header) : 0),
      ...(inFile ? { inFile } : {}),
    });
    this.handledUpTo = offset;
    await this.commit();
    this.options.onStart?.(offset);
    this.credit.open(offset);
  }

  private async consumeStream(): Promise<void> {
    const { port, signal } = this.options;
    for await (const chunk of port.chunks()) {
      // The pooled buffers this loop holds for the chunk: its payload's, and its raw bytes' when decompressed into another.
      const holds = chunk.hold ? [chunk.hold] : [];
      try {
        signal.throwIfAborted();
        this.checkpoint.throwIfFailed();
        const offset = this.decoder.offset;
        if (chunk.offset + chunk.rawLength <= offset) continue; // a duplicate from before a resume
        if (chunk.offset > offset) {
          throw new SeedwireError('SEEDWIRE_BAD_FRAME', `data frame at offset ${chunk.offset} leaves a gap after ${offset}`);
        }
        const { raw, hold } = await this.inflater.inflate(chunk);
        if (hold && hold !== chunk.hold) holds.push(hold);
        // The writer retains the raw bytes' buffer for the writes that read them.
        await this.consume(raw.subarray(offset - chunk.offset), hold);
      } finally {
        // Every event of the chunk was handled: only writes in flight still read it, and they retained it.
        for (const held of holds) held.release();
      }
      if (this.decoder.done) return;
      this.afterChunk();
    }
    signal.throwIfAborted();
    this.decoder.finish();
  }

  private afterChunk(): void {
    const offset = this.decoder.offset;
    this.credit.advance(offset);
    this.checkpoint.commitWhenDue(offset, this.writer.unsyncedFiles, () => this.commit());
    this.options.onProgress?.({ received: offset, committed: this.checkpoint.committed, window: this.credit.size });
  }

  /**
   * Decodes raw stream bytes (they start at the decoder's offset) and handles each event in turn;
   * `hold` is their pooled buffer's, if they lie in one (the writer retains it for its writes).
   */
  private async consume(raw: Buffer, hold: BufferHold | undefined): Promise<void> {
    this.decoder.push(raw);
    for (let event = this.decoder.next(); event !== null; event = this.decoder.next()) {
      await this.handle(event, hold);
      if (event.kind !== 'data' && this.writer.filePoint === null) this.handledUpTo = event.end;
      if (event.kind === 'end' && this.decoder.pending > 0) this.decoder.next(); // throws: bytes after the end
    }
  }

  private async handle(event: SeedEvent, hold: BufferHold | undefined): Promise<void> {
    switch (event.kind) {
      case 'entry':
        return this.writer.writeEntry(event.header, event.end);
      case 'data':
        return this.writer.writeData(event.bytes, hold);
      case 'trailer':
        this.checkpoint.addVerified(await this.writer.completeFile(event.sha256));
        return;
      case 'end':
        this.summary = this.checkpoint.verifyEnd(event.header);
        return;
    }
  }

  /** Stores the current resume point once what it covers is durable (captured now). */
  private commit(done: TreeSummary | null = null): Promise<void> {
    const current = this.writer.filePoint;
    const committed = current ? current.dataStart + current.position : this.handledUpTo;
    return this.checkpoint.commit({ committed, current }, this.writer.flush(), done);
  }

  private async finish(): Promise<TreeSummary> {
    const summary = this.summary as TreeSummary;
    await this.checkpoint.settle();
    await this.commit(summary);
    await this.checkpoint.close();
    this.options.onProgress?.({ received: this.decoder.offset, committed: this.checkpoint.committed });
    return summary;
  }

  /** On abort or link drop, store the resume point; after a fatal failure, just stop. */
  private async stopAfterFailure(error: unknown): Promise<void> {
    await this.checkpoint.settle().catch(() => undefined);
    if (!isFatalReceiveError(error) && !this.checkpoint.failed && this.summary === null) {
      // Best effort: when it fails the stored point stays the previous one, which is still valid.
      await this.commit().catch(() => undefined);
    }
    await this.writer.close();
    await this.checkpoint.close();
  }
}
