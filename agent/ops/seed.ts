/**
 * Internal seed operations (shared/ops.ts INTERNAL_OP_PARAMS), called only by the controller's
 * seed state machine. The target keeps `.seedwire-incomplete` (content: the seed id) from
 * prepare until a verified finalize, so a failed or partial seed never looks like a datadir.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { readdir, readFile, rm, stat, mkdir } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { INCOMPLETE_MARKER, INTERNAL_OP_PARAMS } from '../../shared/ops.js';
import type { MysqlConfig } from '../config/schema.js';
import { isExcludedName } from '../transfer/format.js';
import { dropReceiveState, readReceiveState } from '../transfer/receive-state.js';
import { receiveTree } from '../transfer/receive.js';
import { sendTree } from '../transfer/send.js';
import { sendBackup } from '../transfer/backup.js';
import { extractorFor, receiveStream } from '../transfer/receive-stream.js';
import { writeReceiveState } from '../transfer/receive-state.js';
import { resolveTiming } from '../connection/timing.js';
import {
  assertDatadirUnused,
  checkMysqlRunning,
  deleteDatadirContents,
  inspectMarker,
  measureDiskUsage,
  measureFreeSpace,
  removeIncompleteMarker,
  shellQuote,
  watchDatadir,
  writeIncompleteMarker,
  type GuardDeps,
} from '../mysql/index.js';
import { acquireSource } from '../transfer/source.js';
import { measureTree } from '../transfer/walk.js';
import { defineOp, type OpContext, type OpDefinition, type OpResult } from './types.js';

const PROGRESS_INTERVAL_MS = 250;

function mysqlOf(ctx: OpContext): MysqlConfig {
  const mysql = ctx.config.mysql;
  if (!mysql) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'this agent has no mysql section; set mysql.datadir');
  return mysql;
}

function guardDeps(ctx: OpContext, mysql: MysqlConfig): GuardDeps {
  return { mysql, backup: ctx.config.backup, run: ctx.run, signal: ctx.signal };
}

async function requireMarker(datadir: string, seedId: string): Promise<void> {
  const marker = await inspectMarker(datadir);
  if (marker?.seedId !== seedId) {
    throw new SeedwireError(
      'SEEDWIRE_OP_REFUSED',
      marker === null
        ? `${datadir} has no ${INCOMPLETE_MARKER}: run seed-prepare-target first`
        : `${datadir} is being seeded by ${marker.seedId ?? 'an unknown seed'}, not ${seedId}`,
    );
  }
}

/**
 * Runs `work` (writing into the datadir) while re-checking the datadir guard: a server started
 * meanwhile stops the work, and the guard's refusal is what the op reports.
 */
async function whileGuarded<T>(deps: GuardDeps, options: { ignoreOwnChildren: boolean }, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const watch = watchDatadir(deps, { action: 'keep receiving the seed into', ignoreOwnChildren: options.ignoreOwnChildren });
  const signal = deps.signal ? AbortSignal.any([deps.signal, watch.signal]) : watch.signal;
  try {
    return await work(signal);
  } catch (error) {
    throw watch.refusal() ?? error;
  } finally {
    await watch.stop();
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
      // The datadir's current contents are deleted below, so they count as available.
      const free = await measureFreeSpace(mysql.datadir, { nearestExisting: true });
      const reclaimable = await measureDiskUsage(mysql.datadir, ctx.signal).catch(() => 0);
      if (free + reclaimable < params.requiredBytes) {
        throw new SeedwireError(
          'SEEDWIRE_NO_SPACE',
          `the seed needs ${params.requiredBytes} bytes but ${mysql.datadir} has ${free} free plus ${reclaimable} in its current contents; nothing was deleted`,
        );
      }
      await mkdir(mysql.datadir, { recursive: true });
      // The marker is written once the guard passed and before anything is deleted: from then on
      // the datadir says it is incomplete, and the marker records that this seed emptied it.
      await deleteDatadirContents(guardDeps(ctx, mysql), {
        keep: [INCOMPLETE_MARKER],
        action: 'prepare the seed in',
        beforeDelete: () => writeIncompleteMarker(mysql.datadir, params.seedId),
      });
      await dropReceiveState(ctx.config.stateDir);
      return { result: { freeBytes: await measureFreeSpace(mysql.datadir) } };
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
      if (params.format === 'stream') return receiveBackupStream(ctx, mysql, params);
      const stateDir = ctx.config.stateDir;
      const resumable = params.resume ? await readReceiveState(stateDir, params.seedId) : null;
      const deps = guardDeps(ctx, mysql);
      if (!resumable) {
        // A fresh start: nothing half-received may stay behind.
        await dropReceiveState(stateDir);
        await deleteDatadirContents(deps, { keep: [INCOMPLETE_MARKER], action: 'start receiving the seed into' });
      } else {
        await assertDatadirUnused(deps, { action: 'resume receiving the seed into' });
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
        const summary = await whileGuarded(deps, { ignoreOwnChildren: false }, (signal) =>
          receiveTree({
            root: mysql.datadir,
            port,
            resumeState: { dir: stateDir, seedId: params.seedId, resume: resumable !== null },
            signal,
            ...(params.maxBytes === undefined ? {} : { maxBytes: params.maxBytes }),
            allowExternalSymlinks: ctx.config.receive?.allowExternalSymlinks ?? false,
            onStart: (offset) => {
              startOffset = offset;
              ctx.progress({ ready: true, offset });
            },
            onProgress: (progress) => {
              latest = progress;
              report();
            },
          }),
        );
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
      if (params.source.kind === 'backup') return sendBackupStream(ctx, params);
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
      const deps = guardDeps(ctx, mysql);
      await assertDatadirUnused(deps, { action: 'finalize the seed in' });
      if (params.prepare) {
        // A hot backup is only consistent once its copied redo log is applied.
        const command = `${params.prepare} --prepare --target-dir=${shellQuote(mysql.datadir)}`;
        // Echoed so the step's operation output says what ran before the tool's own words.
        ctx.output('stderr', `$ ${command}\n`);
        const prepare = await ctx.run(command);
        if (prepare.exitCode !== 0) {
          throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `${params.prepare} --prepare exited ${prepare.exitCode ?? prepare.signal}: ${prepare.stderrTail.trim().split('\n').slice(-15).join('\n')}`, {
            details: { exitCode: prepare.exitCode },
          });
        }
        // Bookkeeping of the backup that must not outlive it; xtrabackup_info and
        // xtrabackup_binlog_info stay (harmless, and they say where the copy came from).
        for (const name of BACKUP_ONLY_FILES) await rm(join(mysql.datadir, name), { force: true });
      }
      // Identity, pid and socket files never travel, but make sure none is left from before.
      for (const name of await readdir(mysql.datadir)) {
        if (name !== INCOMPLETE_MARKER && isExcludedName(name)) await rm(join(mysql.datadir, name), { force: true });
      }
      if (mysql.user) {
        // -h: change symlinks themselves; a received symlink's target is never touched.
        const command = `chown -hR -- ${shellQuote(`${mysql.user}:`)} ${shellQuote(mysql.datadir)}`;
        ctx.output('stderr', `$ ${command}\n`);
        const chown = await ctx.run(command);
        if (chown.exitCode !== 0) throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `chown to ${mysql.user} failed: ${chown.stderrTail.trim()}`, { details: { exitCode: chown.exitCode } });
      }
      // Checked again right before the datadir becomes startable (--prepare may have taken long).
      if (params.startMysql) await assertDatadirUnused(deps, { action: 'start MySQL on' });
      await removeIncompleteMarker(mysql.datadir);
      await dropReceiveState(ctx.config.stateDir);
      let started = false;
      if (params.startMysql) {
        ctx.output('stderr', `$ ${mysql.startCommand}\n`);
        const start = await ctx.run(mysql.startCommand, { timeoutMs: mysql.commandTimeoutSeconds * 1000 });
        if (start.exitCode !== 0) {
          throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `start command exited ${start.exitCode ?? start.signal}: ${start.stderrTail.trim()}`, { details: { exitCode: start.exitCode } });
        }
        started = true;
      }
      // Only a report: a status that does not answer reads as "not running" here.
      const running = await checkMysqlRunning({ mysql, run: ctx.run, signal: ctx.signal }).catch(() => false);
      return { result: { started, running } };
    },
  }),

  defineOp({
    name: 'seed-cleanup-target',
    params: INTERNAL_OP_PARAMS['seed-cleanup-target'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = mysqlOf(ctx);
      // Only what this seed did is undone: its prepare wrote the marker (with its id) before it
      // emptied anything. Without that marker the target is left exactly as it is.
      let marker;
      try {
        marker = await inspectMarker(mysql.datadir);
      } catch (error) {
        return leaveAsItIs(ctx, params.seedId, toSeedwireError(error).message);
      }
      if (marker?.seedId !== params.seedId) {
        return leaveAsItIs(ctx, params.seedId, marker === null ? `${mysql.datadir} has no ${INCOMPLETE_MARKER}: this seed never emptied it` : `${mysql.datadir} carries another seed's marker`);
      }
      try {
        await deleteDatadirContents(guardDeps(ctx, mysql), { keep: [INCOMPLETE_MARKER], action: 'clean up the seed in' });
      } catch (error) {
        const err = toSeedwireError(error);
        if (err.code !== 'SEEDWIRE_OP_REFUSED') throw err;
        return leaveAsItIs(ctx, params.seedId, err.message);
      }
      await dropReceiveState(ctx.config.stateDir);
      return { result: { cleaned: true, reason: `partial data removed; ${INCOMPLETE_MARKER} kept` } };
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

/** Files a prepared backup leaves that must not stay in a live datadir. */
const BACKUP_ONLY_FILES = ['xtrabackup_logfile', 'xtrabackup_checkpoints', 'xtrabackup_binlog_pos_innodb'] as const;

function leaveAsItIs(ctx: OpContext, seedId: string, reason: string): OpResult {
  ctx.log.warn({ seedId, reason }, 'seed-cleanup-target left the target as it is');
  return { result: { cleaned: false, reason: `target left as it is: ${reason}` } };
}

/** seed-receive of a backup seed: the xbstream goes through the extractor into an emptied datadir. */
async function receiveBackupStream(ctx: OpContext, mysql: MysqlConfig, params: z.output<(typeof INTERNAL_OP_PARAMS)['seed-receive']>): Promise<OpResult> {
  const stateDir = ctx.config.stateDir;
  // No resume for a pipe: every attempt starts over into an emptied datadir (the marker stays).
  await dropReceiveState(stateDir);
  const deps = guardDeps(ctx, mysql);
  await deleteDatadirContents(deps, { keep: [INCOMPLETE_MARKER], action: 'start receiving the seed into' });
  const started = performance.now();
  let latest = { received: 0, committed: 0 };
  const report = throttle((now) => {
    const seconds = (now - started) / 1000;
    const bytesPerSec = seconds > 0 ? Math.round(latest.received / seconds) : undefined;
    ctx.progress({ committed: latest.committed, received: latest.received, ...(bytesPerSec === undefined ? {} : { bytesPerSec }) });
  });
  const port = ctx.streams.openReceive(params.stream);
  try {
    // The extractor is the agent's own child writing into the datadir; it is not a server.
    const summary = await whileGuarded(deps, { ignoreOwnChildren: true }, (signal) =>
      receiveStream({
        root: mysql.datadir,
        port,
        extractor: extractorFor(params.backupTool ?? 'mariabackup', mysql.datadir),
        signal,
        killGraceMs: resolveTiming(ctx.config).killGraceMs,
        ...(params.maxBytes === undefined ? {} : { maxBytes: params.maxBytes }),
        onStart: (offset) => ctx.progress({ ready: true, offset }),
        onProgress: (progress) => {
          latest = progress;
          report();
        },
        onOutput: (stream, text) => ctx.output(stream, text),
      }),
    );
    report(true);
    // What seed-finalize-target checks: the stream arrived whole, with this digest.
    await writeReceiveState(stateDir, { version: 1, seedId: params.seedId, committed: summary.bytes, current: null, ledgerEntries: 0, done: summary, updatedAt: new Date().toISOString() });
    return { result: summary };
  } finally {
    port.close();
  }
}

/** seed-send of a backup seed: the backup tool's stream, from offset 0 only. */
async function sendBackupStream(ctx: OpContext, params: z.output<(typeof INTERNAL_OP_PARAMS)['seed-send']>): Promise<OpResult> {
  if (!ctx.config.backup) {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'a backup seed needs the backup section: set backup.tool (mariabackup or xtrabackup) in the agent config');
  }
  if (params.offset !== 0) throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `a backup stream cannot resume: offset must be 0, not ${params.offset}`);
  await mkdir(ctx.config.stateDir, { recursive: true });
  const port = ctx.streams.openSend(params.stream, params.limit);
  let sent = 0;
  const report = throttle(() => ctx.progress({ sent }));
  try {
    const result = await sendBackup({
      config: ctx.config,
      seedId: params.seedId,
      port,
      compression: params.compression,
      ...(params.maxBytesPerSec ? { maxBytesPerSec: params.maxBytesPerSec } : {}),
      signal: ctx.signal,
      killGraceMs: resolveTiming(ctx.config).killGraceMs,
      onProgress: (offset) => {
        sent = offset;
        report();
      },
      onOutput: (stream, text) => ctx.output(stream, text),
    });
    report(true);
    return { result };
  } finally {
    port.close();
    ctx.log.info({ seedId: params.seedId, stream: params.stream, from: 0, to: sent, aborted: ctx.signal.aborted, source: 'backup' }, 'seed-send ended');
  }
}
