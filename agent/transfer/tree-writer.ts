/**
 * The tree writer: the receiving side's only file system work. It creates what the seed stream's
 * records describe under the datadir through SafeTree (safe-tree.ts), which owns path safety at
 * the file system's edge: paths checked again whatever decoded them, no write through a symlink,
 * symlink targets judged, modes stripped to permission bits.
 *
 * Ranges (a part of a large file, on one of several lanes): the file is opened without truncating
 * what other lanes wrote, the range written at its offset and checked against its own trailer;
 * mode and mtime are applied after every range, so the last write to a file is followed by them.
 *
 * Files: positioned writes with a few in flight (the next chunk is hashed while earlier ones land),
 * data gathered into one writev of about a megabyte (a file's data comes in parts at chunk
 * boundaries, and a write costs a thread-pool round trip and a syscall), each file's content hash (content-hash.ts) computed as it is written and compared with the sender's trailer; mode and
 * mtime applied once it matched. Durability is batched: verified files stay open until flush()
 * fdatasyncs them together, which the checkpoint awaits before it stores a resume point.
 */
import { SeedwireError } from '../../shared/errors.js';
import type { FilePoint } from './checkpoint.js';
import { createContentHash, type ContentHash, type ContentHashName } from './content-hash.js';
import { dataLength, dataOffset, digestEntryOf, type DataHeader, type DigestEntry, type DirHeader, type FileHeader, type RangeHeader, type SymlinkHeader } from './format.js';
import { SafeTree, type WritableFile } from './safe-tree.js';
import type { BufferHold } from '../streams/receive-buffers.js';

/** Writes of one file in flight at once. */
const MAX_PENDING_WRITES = 4;
/** Bytes gathered before one writev is issued. */
const WRITE_BATCH_BYTES = 1024 * 1024;
/** Pieces gathered before one writev is issued (IOV_MAX is 1024 on Linux). */
const WRITE_BATCH_PIECES = 256;
/** A whole file up to this size is written with synchronous calls (SafeTree.openSmallFile). */
const SMALL_FILE_BYTES = 256 * 1024;
/** Read size when re-hashing a resumed file's stored prefix. */
const REHASH_CHUNK_BYTES = 4 * 1024 * 1024;

export interface TreeWriterOptions {
  /** Accept symlinks pointing outside the root (agent config receive.allowExternalSymlinks). */
  allowExternalSymlinks?: boolean;
  /** How file contents are hashed (the seed's choice); default sha256. */
  contentHash?: ContentHashName;
}

interface OpenFile {
  header: DataHeader;
  fh: WritableFile;
  /** File position of the record's first data byte (a range's offset; 0 for a whole file). */
  base: number;
  hash: ContentHash;
  /** Stream offset of the file's first data byte. */
  dataStart: number;
  /** Bytes handed to write so far (gathered or issued). */
  written: number;
  /** Data gathered for the next writev, and where in the file it starts. */
  batch: Buffer[];
  batchBytes: number;
  batchAt: number;
  /** The pooled buffers the batch's pieces lie in, each retained once per piece until its write settles. */
  batchHolds: BufferHold[];
  /** Positioned writes issued and not yet known done, oldest first. */
  pending: Array<Promise<void>>;
}

export class TreeWriter {
  private readonly tree: SafeTree;
  private readonly hashName: ContentHashName;
  private current: OpenFile | null = null;
  /** Verified files not yet fdatasync'd, kept open for the next flush(). */
  private unsynced: WritableFile[] = [];

  constructor(root: string, options: TreeWriterOptions = {}) {
    this.tree = new SafeTree(root, { allowExternalSymlinks: options.allowExternalSymlinks ?? false });
    this.hashName = options.contentHash ?? 'sha256';
  }

  /** The file being written as a resume point; null between records. */
  get filePoint(): FilePoint | null {
    const cur = this.current;
    if (!cur) return null;
    const { path, mode, mtimeMs, size } = cur.header;
    const point: FilePoint = { path, mode, mtimeMs, size, dataStart: cur.dataStart, position: cur.written };
    return cur.header.type === 'range' ? { ...point, range: { offset: cur.header.offset, length: cur.header.length } } : point;
  }

  get unsyncedFiles(): number {
    return this.unsynced.length;
  }

  /**
   * Creates a directory or symlink, or opens a file whose data starts at `dataStart`: truncated
   * for a whole file; for a range, kept as other lanes wrote it (only cut back if it is longer
   * than the file's size, which no lane writes past).
   */
  async writeEntry(header: DirHeader | FileHeader | SymlinkHeader | RangeHeader, dataStart: number): Promise<void> {
    if (this.current) throw new SeedwireError('SEEDWIRE_INTERNAL', `tree writer: ${header.path} begins inside ${this.current.header.path}`);
    switch (header.type) {
      case 'dir':
        return this.tree.makeDir(header.path, header.mode);
      case 'symlink':
        return this.tree.makeSymlink(header.path, header.target);
      case 'file': {
        const fh = header.size <= SMALL_FILE_BYTES ? await this.tree.openSmallFile(header.path) : await this.tree.openFile(header.path, true);
        this.current = { header, fh, base: 0, hash: createContentHash(this.hashName), dataStart, written: 0, pending: [], ...emptyBatch(0) };
        return;
      }
      case 'range': {
        const fh = await this.tree.openFile(header.path, false);
        try {
          if ((await fh.stat()).size > header.size) await fh.truncate(header.size);
        } catch (error) {
          await fh.close();
          throw error;
        }
        this.current = { header, fh, base: header.offset, hash: createContentHash(this.hashName), dataStart, written: 0, pending: [], ...emptyBatch(header.offset) };
        return;
      }
    }
  }

  /**
   * Reopens the file a resume point is inside of: a whole file cut to the stored length (a range
   * is never cut: other lanes' bytes may follow it) and re-hashed, so its trailer check still
   * covers all of its bytes. Returns its header for the decoder.
   */
  async resumeFile(point: FilePoint): Promise<DataHeader> {
    const common = { path: point.path, mode: point.mode, mtimeMs: point.mtimeMs, size: point.size };
    const header: DataHeader = point.range ? { type: 'range', ...common, offset: point.range.offset, length: point.range.length } : { type: 'file', ...common };
    const base = dataOffset(header);
    if (point.position > dataLength(header) || base + dataLength(header) > point.size) {
      throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `the resume point of ${point.path} is past its size`);
    }
    const fh = await this.tree.openFile(point.path, false);
    try {
      // Checked before the cut: truncate would pad a short file with zeros.
      if ((await fh.stat()).size < base + point.position) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `${point.path} is shorter than its resume point`);
      if (header.type === 'file') await fh.truncate(point.position);
      const hash = createContentHash(this.hashName);
      const buf = Buffer.allocUnsafe(Math.min(REHASH_CHUNK_BYTES, Math.max(1, point.position)));
      let done = 0;
      while (done < point.position) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, point.position - done), base + done);
        if (bytesRead === 0) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `${point.path} is shorter than its resume point`);
        hash.update(buf.subarray(0, bytesRead));
        done += bytesRead;
      }
      this.current = { header, fh, base, hash, dataStart: point.dataStart, written: point.position, pending: [], ...emptyBatch(base + point.position) };
      return header;
    } catch (error) {
      await fh.close();
      throw error;
    }
  }

  /**
   * Appends data to the current file: hashed now, gathered, and written in the background. The
   * bytes are kept (not copied) until written: nothing may write to them meanwhile. When they lie
   * in a pooled receive buffer, `hold` is its: retained now, released once their write settled.
   */
  async writeData(bytes: Buffer, hold?: BufferHold): Promise<void> {
    const cur = this.requireFile();
    cur.hash.update(bytes);
    cur.batch.push(bytes);
    if (hold) {
      hold.retain();
      cur.batchHolds.push(hold);
    }
    cur.batchBytes += bytes.length;
    cur.written += bytes.length;
    if (cur.batchBytes < WRITE_BATCH_BYTES && cur.batch.length < WRITE_BATCH_PIECES) return;
    issueBatch(cur);
    while (cur.pending.length >= MAX_PENDING_WRITES) await cur.pending.shift();
  }

  /** The current file (or range) ended: its hash must be the sender's trailer; then mode and mtime are applied. */
  async completeFile(trailer: Buffer): Promise<DigestEntry> {
    const cur = this.requireFile();
    issueBatch(cur);
    await Promise.all(cur.pending.splice(0));
    const sha = cur.hash.digest();
    if (!sha.equals(trailer)) {
      const what = cur.header.type === 'range' ? `${cur.header.path} (bytes ${cur.header.offset}+${cur.header.length})` : cur.header.path;
      throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `checksum mismatch for ${what}: received data hashes to ${sha.toString('hex')}, the sender's is ${trailer.toString('hex')}`, {
        details: { path: cur.header.path },
      });
    }
    await this.tree.setFileMode(cur.fh, cur.header.mode);
    const mtime = cur.header.mtimeMs / 1000;
    await cur.fh.utimes(mtime, mtime);
    this.unsynced.push(cur.fh);
    this.current = null;
    return digestEntryOf(cur.header, sha.toString('hex'));
  }

  /**
   * Makes durable everything written so far: what is written when this is called is captured at
   * once, so writes after it may go on (an fdatasync of the current file covers them too, which
   * is harmless). Verified files are closed once synced.
   */
  flush(): Promise<void> {
    const syncs = this.unsynced.splice(0).map((fh) => fh.datasync().finally(() => fh.close()));
    const cur = this.current;
    if (cur) {
      issueBatch(cur);
      const issued = [...cur.pending];
      syncs.push(Promise.all(issued).then(() => cur.fh.datasync()));
    }
    return Promise.allSettled(syncs).then((results) => {
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    });
  }

  /** Closes every handle without syncing (after a failure; a flush first keeps what it covers). */
  async close(): Promise<void> {
    const handles = [...this.unsynced.splice(0), ...(this.current ? [this.current.fh] : [])];
    const pending = this.current?.pending ?? [];
    this.current = null;
    await Promise.allSettled(pending);
    await Promise.allSettled(handles.map((fh) => fh.close()));
  }

  private requireFile(): OpenFile {
    if (!this.current) throw new SeedwireError('SEEDWIRE_INTERNAL', 'tree writer: file data outside a file');
    return this.current;
  }
}

function emptyBatch(at: number): Pick<OpenFile, 'batch' | 'batchBytes' | 'batchAt' | 'batchHolds'> {
  return { batch: [], batchBytes: 0, batchAt: at, batchHolds: [] };
}

/**
 * Starts the write of what the file has gathered (awaited in completeFile, flush or close). The
 * pooled buffers it reads are released once it settled, written or failed, never before. A batch
 * never issued (the receive failed) keeps its holds: those buffers are left to the collector.
 */
function issueBatch(cur: OpenFile): void {
  if (cur.batchBytes === 0) return;
  const holds = cur.batchHolds;
  const write = writeAll(cur.fh, cur.batch, cur.batchBytes, cur.batchAt).finally(() => {
    for (const hold of holds) hold.release();
  });
  write.catch(() => undefined); // awaited in completeFile, flush or close
  cur.pending.push(write);
  Object.assign(cur, emptyBatch(cur.batchAt + cur.batchBytes));
}

async function writeAll(fh: WritableFile, pieces: Buffer[], length: number, position: number): Promise<void> {
  const { bytesWritten } = pieces.length === 1 ? await fh.write(pieces[0] as Buffer, 0, length, position) : await fh.writev(pieces, position);
  if (bytesWritten < length) await writeFully(fh, Buffer.concat(pieces).subarray(bytesWritten), position + bytesWritten);
}

async function writeFully(fh: WritableFile, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}
