/**
 * Micro-benchmark (not a test): sends a ~1 GB tree through the in-process stream pair per codec
 * and prints MB/s. Guides tuning of agent/transfer/. Run: npx tsx bench/transfer-local.ts [MB]
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpoint } from '../agent/transfer/checkpoint.js';
import { receiveTree } from '../agent/transfer/receive.js';
import { sendTree } from '../agent/transfer/send.js';
import type { Codec } from '../shared/codec.js';
import { createStreamPair } from '../test/helpers/stream-pair.js';

const totalMb = Number(process.argv[2] ?? 1024);
const work = await mkdtemp(join(tmpdir(), 'seedwire-bench-'));
try {
  const source = join(work, 'source');
  await mkdir(join(source, 'db'), { recursive: true });
  // InnoDB-like pages: half random, half zeros (compresses about 2:1).
  const page = (): Buffer => Buffer.concat([randomBytes(8192), Buffer.alloc(8192)]);
  const block = Buffer.concat(Array.from({ length: 64 }, page)); // 1 MiB
  const bigFiles = 4;
  const smallShare = Number(process.argv[3] ?? 0.2);
  const bigMb = Math.floor((totalMb * (1 - smallShare)) / bigFiles);
  for (let f = 0; f < bigFiles; f += 1) await writeFile(join(source, `ibdata${f}`), Buffer.concat(Array.from({ length: bigMb }, () => block)));
  const smallFiles = Math.floor((totalMb * smallShare * 1024) / 256);
  for (let f = 0; f < smallFiles; f += 1) await writeFile(join(source, 'db', `t${f}.ibd`), block.subarray(0, 256 * 1024));
  console.log(`tree: ${bigFiles} x ${bigMb} MiB + ${smallFiles} x 256 KiB`);

  for (const codec of ['none', 'zstd', 'gzip'] as Codec[]) {
    const target = join(work, `target-${codec}`);
    const state = join(work, `state-${codec}`);
    await mkdir(target);
    const pair = createStreamPair();
    const signal = new AbortController().signal;
    const started = performance.now();
    let onStart!: (offset: number) => void;
    const start = new Promise<number>((resolve) => {
      onStart = resolve;
    });
    const checkpoint = await openCheckpoint({ stateDir: state, seedId: 'bench', resume: false });
    const receive = receiveTree({ root: target, port: pair.receive, checkpoint, signal, onStart });
    receive.catch(() => pair.cut('receiver failed'));
    const sent = await sendTree({ root: source, port: pair.send, offset: await start, compression: codec, signal });
    pair.send.close();
    await receive;
    const seconds = (performance.now() - started) / 1000;
    console.log(`${codec.padEnd(5)} ${(sent.bytes / 1e6 / seconds).toFixed(0).padStart(5)} MB/s  (${(sent.bytes / 1e6).toFixed(0)} MB in ${seconds.toFixed(2)} s, relay peak ${(pair.stats.maxQueuedBytes / 1048576).toFixed(1)} MiB)`);
    await rm(target, { recursive: true, force: true });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
