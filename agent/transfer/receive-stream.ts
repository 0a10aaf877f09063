/**
 * The receiving side of a `backup` seed: the stream is an xbstream (mariabackup/xtrabackup), sent
 * verbatim by sendStream, not the seed stream of format.ts. Each data frame (CRC already checked
 * by the port) is decompressed, checked by XbstreamInspector (no path outside the datadir, none on
 * the seed marker) and only then written to the extractor's stdin (`mbstream -x -C <datadir>`,
 * its own process group). The bytes of a chunk header are held back until the whole header has
 * been checked, so the extractor never sees any part of a refused chunk. The digest is the
 * SHA-256 of all stream bytes, as the sender computes.
 *
 * Credit and the failures that are not cancellations come from credit.ts, as for the tree receiver.
 *
 * The end of the stream is an empty data frame at the final offset, which the sender sends only
 * after the backup tool exited 0. No resume: a new attempt starts from offset 0 into an emptied
 * datadir. After extraction the tree is checked: every file is one the stream named, every one it
 * named exists, no symlink points outside, nothing but files and directories.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { execa } from 'execa';
import { SeedwireError } from '../../shared/errors.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import type { ReceivePort } from '../streams/types.js';
import { commandFailed } from '../exec/failure.js';
import { startToolChild, toolFailed, type ToolChild } from './child.js';
import { ChunkInflater } from './compress.js';
import { CreditWindow, receiveStopError } from './credit.js';
import type { TreeSummary } from './format.js';
import type { ReceiveProgress } from './receive.js';
import { refuseRecord } from './record-rules.js';
import { XbstreamInspector } from './xbstream.js';

export interface Extractor {
  /** Program and arguments; it reads the stream on stdin and writes under `root`. */
  file: string;
  args: string[];
}

export interface ReceiveStreamOptions {
  root: string;
  port: ReceivePort;
  extractor: Extractor;
  signal: AbortSignal;
  killGraceMs: number;
  /** Called once with the offset the sender must start from: always 0. */
  onStart?: (offset: number) => void;
  onProgress?: (progress: ReceiveProgress) => void;
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  windowInitialBytes?: number;
  windowMaxBytes?: number;
  /** Most payload bytes the stream may declare (what the seed's precheck allowed); default no limit. */
  maxBytes?: number;
}

/** The extractor for a backup tool's stream. */
export function extractorFor(tool: 'mariabackup' | 'xtrabackup', root: string): Extractor {
  return { file: tool === 'xtrabackup' ? 'xbstream' : 'mbstream', args: ['-x', '-C', root] };
}

export async function receiveStream(options: ReceiveStreamOptions): Promise<TreeSummary> {
  const { root, port, signal } = options;
  const inspector = new XbstreamInspector({ maxBytes: options.maxBytes ?? null });
  /** Bytes of a chunk header not yet wholly checked, held back from the extractor. */
  let held = Buffer.alloc(0);
  const hash = createHash('sha256');
  const credit = new CreditWindow(port, { initialBytes: options.windowInitialBytes, maxBytes: options.windowMaxBytes });
  const inflater = new ChunkInflater();
  let offset = 0;
  let child: ToolChild | null = null;
  const onAbort = (): void => port.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    signal.throwIfAborted();
    child = startToolChild({
      file: options.extractor.file,
      args: options.extractor.args,
      stdin: 'pipe',
      killGraceMs: options.killGraceMs,
      ...(options.onOutput ? { onOutput: options.onOutput } : {}),
    });
    const stdin = child.stdin;
    if (!stdin) throw new SeedwireError('SEEDWIRE_INTERNAL', `${options.extractor.file} has no stdin`);
    const exitedEarly = child.exited.then((exit) => exit);

    options.onStart?.(0);
    credit.open(0);
    let ended = false;
    for await (const chunk of port.chunks()) {
      signal.throwIfAborted();
      if (chunk.offset !== offset) {
        throw new SeedwireError('SEEDWIRE_BAD_FRAME', `backup stream frame at offset ${chunk.offset}, expected ${offset} (a backup stream cannot resume or skip)`);
      }
      if (chunk.rawLength === 0) {
        ended = true; // the sender's end of stream: the tool exited 0 after its last byte
        break;
      }
      const { raw } = await inflater.inflate(chunk);
      inspector.push(raw); // refuses unsafe paths and sizes before the extractor sees them
      hash.update(raw);
      const ready = held.length > 0 ? Buffer.concat([held, raw]) : raw;
      const passed = ready.length - inspector.unvalidatedBytes;
      held = Buffer.from(ready.subarray(passed));
      if (passed > 0 && !stdin.write(ready.subarray(0, passed))) {
        const exit = await Promise.race([once(stdin, 'drain').then(() => null), exitedEarly]);
        if (exit) throw toolFailed(`${options.extractor.file} (extracting the backup)`, exit, child.stderrTail());
      }
      offset += raw.length;
      credit.advance(offset);
      options.onProgress?.({ received: offset, committed: offset, window: credit.size });
    }
    if (!ended) {
      signal.throwIfAborted();
      throw new SeedwireError('SEEDWIRE_DISCONNECTED', `backup stream ended at offset ${offset} before its end`);
    }
    inspector.end();
    stdin.end();
    const exit = await child.exited;
    if (exit.code !== 0) throw toolFailed(`${options.extractor.file} (extracting the backup)`, exit, child.stderrTail());
    child = null;
    await checkExtractedTree(root, inspector.paths);
    await syncFilesystem(root);
    options.onProgress?.({ received: offset, committed: offset, window: credit.size });
    return { files: inspector.files, bytes: offset, digest: hash.digest('hex') };
  } catch (error) {
    if (child) await child.stop();
    throw receiveStopError(error, signal, `backup stream receive canceled at offset ${offset}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * After extraction: only regular files and directories, every file one the stream named (or the
 * marker), every named file present, and no symlink whose target resolves outside `root`.
 */
export async function checkExtractedTree(root: string, expected: ReadonlySet<string>): Promise<void> {
  const found = new Set<string>();
  const realRoot = resolve(root);
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(root, r);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) {
        const target = resolve(dirname(abs), await readlink(abs));
        const inside = relative(realRoot, target);
        if (inside === '..' || inside.startsWith(`..${sep}`) || isAbsolute(inside)) {
          throw refuseRecord(r, 'after extraction it is a symlink pointing outside the datadir');
        }
        found.add(r);
      } else if (st.isDirectory()) {
        await walk(r);
      } else if (st.isFile()) {
        if (!(rel === '' && name === INCOMPLETE_MARKER)) found.add(r);
      } else {
        throw refuseRecord(r, 'after extraction it is neither a file nor a directory');
      }
    }
  };
  await walk('');
  for (const path of found) {
    if (!expected.has(path)) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `after extraction the datadir holds ${path}, which the backup stream did not carry`);
  }
  for (const path of expected) {
    if (!found.has(path)) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `the backup stream carried ${path} but it is not in the datadir after extraction`);
  }
}

/** syncfs(2) of the datadir's filesystem: the extractor wrote through the page cache. */
async function syncFilesystem(root: string): Promise<void> {
  const result = await execa('sync', ['-f', root], { reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) throw commandFailed(`sync -f ${root}`, { exitCode: result.exitCode ?? null, signal: result.signal ?? null, stderrTail: String(result.stderr) });
}
