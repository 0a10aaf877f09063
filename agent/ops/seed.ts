/**
 * Internal seed operations (shared/ops.ts INTERNAL_OP_PARAMS), called only by the controller's
 * seed state machine. The target keeps `.seedwire-incomplete` (content: the seed id) from
 * prepare until a verified finalize, so a failed or partial seed never looks like a datadir.
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rm, stat, statfs, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { SeedwireError } from '../../shared/errors.js';
import { INCOMPLETE_MARKER, INTERNAL_OP_PARAMS } from '../../shared/ops.js';
import type { MysqlConfig } from '../config/schema.js';
import { isExcludedName } from '../transfer/format.js';
import { dropReceiveState, readReceiveState } from '../transfer/receive-state.js';
import { receiveTree } from '../transfer/receive.js';
import { sendTree } from '../transfer/send.js';
import { measureDiskUsage } from '../mysql/disk.js';
import { acquireSource } from '../transfer/source.js';
import { measureTree } from '../transfer/walk.js';
import { defineOp, type OpContext, type OpDefinition } from './types.js';

const PROGRESS_INTERVAL_MS = 250;

function mysqlOf(ctx: OpContext): MysqlConfig {
  const mysql = ctx.config.mysql;
  if (!mysql) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'this agent has no mysql section; set mysql.datadir');
  return mysql;
}

async function isMysqlRunning(ctx: OpContext, mysql: MysqlConfig): Promise<boolean> {
  const result = await ctx.run(mysql.statusCommand, { quiet: true, timeoutMs: mysql.commandTimeoutSeconds * 1000 });
  return result.exitCode === 0;
}

/** Free bytes for an unprivileged writer on the filesystem holding `path` (or its nearest existing parent). */
async function freeBytes(path: string): Promise<number> {
  let probe = path;
  for (;;) {
    try {
      const fs = await statfs(probe);
      return fs.bavail * fs.bsize;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(probe) === probe) throw error;
      probe = dirname(probe);
    }
  }
}

async function readMarker(datadir: string): Promise<string | null> {
  try {
    return await readFile(join(datadir, INCOMPLETE_MARKER), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function writeMarker(datadir: string, seedId: string): Promise<void> {
  const fh = await open(join(datadir, INCOMPLETE_MARKER), 'w', 0o644);
  try {
    await fh.writeFile(seedId);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await syncDir(datadir);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function requireMarker(datadir: string, seedId: string): Promise<void> {
  const marker = await readMarker(datadir);
  if (marker !== seedId) {
    throw new SeedwireError(
      'SEEDWIRE_OP_REFUSED',
      marker === null ? `${datadir} has no ${INCOMPLETE_MARKER}: run seed-prepare-target first` : `${datadir} is being seeded by ${marker}, not ${seedId}`,
    );
  }
}

/** Removes everything in the datadir except the marker (symlinks are removed, never followed). */
async function emptyDatadir(datadir: string): Promise<void> {
  for (const name of await readdir(datadir)) {
    if (name !== INCOMPLETE_MARKER) await rm(join(datadir, name), { recursive: true, force: true });
  }
}

function throttle(fn: (now: number) => void): (force?: boolean) => void {
  let last = 0;
  return (force = false) => {
    const now = performance.now();
    if (!force && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    fn(now);
  };
}

/** A file name for per-seed state: seed ids are free text. */
function seedFileName(prefix: string, seedId: string): string {
  return `${prefix}-${createHash('sha256').update(seedId).digest('hex').slice(0, 24)}`;
}

/**
 * Binlog coordinates of a cleanly stopped server: the last file its binlog index lists, and that
 * file's size. Null when the datadir has no binlog index.
 */
export async function readBinlogCoordinates(datadir: string): Promise<{ file: string; position: number } | null> {
  const indexes = (await readdir(datadir)).filter((name) => name.endsWith('.index') && !name.includes('relay')).sort();
  for (const index of indexes) {
    const lines = (await readFile(join(datadir, index), 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean);
    const last = lines.at(-1);
    if (!last) continue;
    const path = isAbsolute(last) ? last : join(datadir, last);
    try {
      const st = await stat(path);
      return { file: last.split('/').at(-1) as string, position: st.size };
    } catch {
      continue;
    }
  }
  return null;
}

export const seedOps: OpDefinition[] = [
  defineOp({
    name: 'seed-prepare-target',
    params: INTERNAL_OP_PARAMS['seed-prepare-target'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = mysqlOf(ctx);
      if (await isMysqlRunning(ctx, mysql)) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'MySQL is running on the target; stop it before seeding');
      // The datadir's current contents are deleted below, so they count as available.
      const free = await freeBytes(mysql.datadir);
      const reclaimable = await measureDiskUsage(mysql.datadir, ctx.signal).catch(() => 0);
      if (free + reclaimable < params.requiredBytes) {
        throw new SeedwireError(
          'SEEDWIRE_NO_SPACE',
          `the seed needs ${params.requiredBytes} bytes but ${mysql.datadir} has ${free} free plus ${reclaimable} in its current contents`,
        );
      }
      await mkdir(mysql.datadir, { recursive: true });
      // The marker goes first: from here on, an interrupted seed leaves a datadir that says so.
      await writeMarker(mysql.datadir, params.seedId);
      await emptyDatadir(mysql.datadir);
      await dropReceiveState(ctx.config.stateDir);
      return { result: { freeBytes: await freeBytes(mysql.datadir) } };
    },
  }),

  defineOp({
    name: 'seed-receive',
    params: INTERNAL_OP_PARAMS['seed-receive'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = mysqlOf(ctx);
      await requireMarker(mysql.datadir, params.seedId);
      const stateDir = ctx.config.stateDir;
      const resumable = params.resume ? await readReceiveState(stateDir, params.seedId) : null;
      if (!resumable) {
        // A fresh start: nothing half-received may stay behind.
        await dropReceiveState(stateDir);
        await emptyDatadir(mysql.datadir);
      }
      const started = performance.now();
      let startOffset = 0;
      let latest = { received: 0, committed: 0 };
      const report = throttle((now) => {
        const seconds = (now - started) / 1000;
        const bytesPerSec = seconds > 0 ? Math.round((latest.received - startOffset) / seconds) : undefined;
        ctx.progress({ committed: latest.committed, received: latest.received, ...(bytesPerSec === undefined ? {} : { bytesPerSec }) });
      });
      const port = ctx.streams.openReceive(params.stream);
      try {
        const summary = await receiveTree({
          root: mysql.datadir,
          port,
          resumeState: { dir: stateDir, seedId: params.seedId, resume: resumable !== null },
          signal: ctx.signal,
          onStart: (offset) => {
            startOffset = offset;
            ctx.progress({ ready: true, offset });
          },
          onProgress: (progress) => {
            latest = progress;
            report();
          },
        });
        report(true);
        return { result: summary };
      } finally {
        port.close();
      }
    },
  }),

  defineOp({
    name: 'seed-send',
    params: INTERNAL_OP_PARAMS['seed-send'],
    async run(ctx, params) {
      const source = await acquireSource(ctx.config, params.source.kind, ctx.signal);
      const root = source.root;
      const port = ctx.streams.openSend(params.stream, params.limit);
      let sent = params.offset;
      const report = throttle(() => ctx.progress({ sent }));
      const hashCachePath = join(ctx.config.stateDir, seedFileName('seed-send', params.seedId));
      await mkdir(ctx.config.stateDir, { recursive: true });
      try {
        const summary = await sendTree({
          root,
          port,
          offset: params.offset,
          compression: params.compression,
          ...(params.maxBytesPerSec ? { maxBytesPerSec: params.maxBytesPerSec } : {}),
          signal: ctx.signal,
          hashCachePath,
          onProgress: (offset) => {
            sent = offset;
            report();
          },
        });
        report(true);
        await rm(hashCachePath, { force: true });
        const binlog = params.source.kind === 'datadir' ? await readBinlogCoordinates(root) : null;
        return { result: binlog ? { ...summary, binlog } : summary };
      } finally {
        port.close();
        source.release();
        ctx.log.info({ seedId: params.seedId, stream: params.stream, from: params.offset, to: sent, aborted: ctx.signal.aborted }, 'seed-send ended');
      }
    },
  }),

  defineOp({
    name: 'seed-finalize-target',
    params: INTERNAL_OP_PARAMS['seed-finalize-target'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = mysqlOf(ctx);
      await requireMarker(mysql.datadir, params.seedId);
      const state = await readReceiveState(ctx.config.stateDir, params.seedId);
      if (!state?.done) throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `seed ${params.seedId} has not been received completely; the target keeps its ${INCOMPLETE_MARKER}`);
      if (state.done.digest !== params.digest) {
        throw new SeedwireError('SEEDWIRE_VERIFY_FAILED', `received digest ${state.done.digest} differs from the source's ${params.digest}; the target keeps its ${INCOMPLETE_MARKER}`);
      }
      // Identity, pid and socket files never travel, but make sure none is left from before.
      for (const name of await readdir(mysql.datadir)) {
        if (name !== INCOMPLETE_MARKER && isExcludedName(name)) await rm(join(mysql.datadir, name), { force: true });
      }
      if (mysql.user) {
        // -h: change symlinks themselves; a received symlink's target is never touched.
        const chown = await ctx.run(`chown -hR -- ${shellQuote(`${mysql.user}:`)} ${shellQuote(mysql.datadir)}`, { quiet: true });
        if (chown.exitCode !== 0) throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `chown to ${mysql.user} failed: ${chown.stderrTail.trim()}`);
      }
      await rm(join(mysql.datadir, INCOMPLETE_MARKER), { force: true });
      await syncDir(mysql.datadir);
      await dropReceiveState(ctx.config.stateDir);
      let started = false;
      if (params.startMysql) {
        const start = await ctx.run(mysql.startCommand, { timeoutMs: mysql.commandTimeoutSeconds * 1000 });
        if (start.exitCode !== 0) {
          throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `start command exited ${start.exitCode ?? start.signal}: ${start.stderrTail.trim()}`);
        }
        started = true;
      }
      return { result: { started, running: await isMysqlRunning(ctx, mysql) } };
    },
  }),

  defineOp({
    name: 'seed-cleanup-target',
    params: INTERNAL_OP_PARAMS['seed-cleanup-target'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = mysqlOf(ctx);
      await mkdir(mysql.datadir, { recursive: true });
      // Keep (or put back) the marker: partial data must never look like a valid datadir.
      if ((await readMarker(mysql.datadir)) === null) await writeMarker(mysql.datadir, params.seedId);
      await emptyDatadir(mysql.datadir);
      await dropReceiveState(ctx.config.stateDir);
      return { result: { cleaned: true } };
    },
  }),

  defineOp({
    name: 'seed-source-size',
    params: INTERNAL_OP_PARAMS['seed-source-size'],
    async run(ctx, params) {
      const source = await acquireSource(ctx.config, params.source.kind, ctx.signal);
      try {
        return { result: await measureTree(source.root, ctx.signal) };
      } finally {
        source.release();
      }
    },
  }),
];

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
