/**
 * Internal seed operations (shared/ops.ts INTERNAL_OP_PARAMS), called only by the controller's
 * seed state machine. The target keeps `.seedwire-incomplete` (content: the seed id) from
 * prepare until a verified finalize, so a failed or partial seed never looks like a datadir.
 *
 * Only the operations live here: host checks come from agent/mysql/ (status, marker, free space,
 * the datadir guard and deletion), the transfer from agent/transfer/ (receive pipeline,
 * checkpoint, senders, progress).
 */
import { mkdir, rm } from 'node:fs/promises';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { ContentHashSchema, INCOMPLETE_MARKER, INTERNAL_OP_PARAMS, type OpParams, type SendSummary } from '../../shared/ops.js';
import type { MysqlConfig } from '../config/schema.js';
import { resolveTiming } from '../connection/timing.js';
import { commandFailed } from '../exec/failure.js';
import {
  assertDatadirUnused,
  checkMysqlRunning,
  deleteDatadirContents,
  inspectMarker,
  measureDiskUsage,
  measureFreeSpace,
  readBinlogCoordinates,
  removeIncompleteMarker,
  requireMysql,
  requireSeedMarker,
  runWhileGuarded,
  shellQuote,
  writeIncompleteMarker,
  type GuardDeps,
} from '../mysql/index.js';
import { sendBackup } from '../transfer/backup.js';
import { dropReceiveState, openCheckpoint, recordReceived, requireReceived } from '../transfer/checkpoint.js';
import { hashCachePath } from '../transfer/hash-cache.js';
import { reportReceived, reportSent } from '../transfer/progress.js';
import { extractorFor, receiveStream } from '../transfer/receive-stream.js';
import { receiveTree } from '../transfer/receive.js';
import { receiveTurnsOf } from '../transfer/receive-turns.js';
import { sendTree } from '../transfer/send.js';
import { acquireSource } from '../transfer/source.js';
import { tidyReceivedDatadir } from '../transfer/tidy.js';
import { measureTree } from '../transfer/walk.js';
import type { SendPort } from '../streams/types.js';
import { defineOp, type OpContext, type OpDefinition, type OpResult } from './types.js';

type ReceiveParams = OpParams<'seed-receive'>;
type SendParams = OpParams<'seed-send'>;

function guardDeps(ctx: OpContext, mysql: MysqlConfig): GuardDeps {
  return { mysql, backup: ctx.config.backup, run: ctx.run, signal: ctx.signal };
}

export const seedOps: OpDefinition[] = [
  defineOp({
    name: 'seed-prepare-target',
    params: INTERNAL_OP_PARAMS['seed-prepare-target'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = requireMysql(ctx.config);
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
      const mysql = requireMysql(ctx.config);
      await requireSeedMarker(mysql.datadir, params.seedId);
      return params.format === 'stream' ? receiveBackupStream(ctx, mysql, params) : receiveSeedTree(ctx, mysql, params);
    },
  }),

  defineOp({
    name: 'seed-send',
    params: INTERNAL_OP_PARAMS['seed-send'],
    async run(ctx, params) {
      return params.source.kind === 'backup' ? sendBackupStream(ctx, params) : sendSeedTree(ctx, params);
    },
  }),

  defineOp({
    name: 'seed-finalize-target',
    params: INTERNAL_OP_PARAMS['seed-finalize-target'],
    requires: ['mysql'],
    mutates: true,
    async run(ctx, params) {
      const mysql = requireMysql(ctx.config);
      await requireSeedMarker(mysql.datadir, params.seedId);
      await requireReceived(ctx.config.stateDir, params.seedId, params.digest, params.lanes ?? 1);
      const deps = guardDeps(ctx, mysql);
      await assertDatadirUnused(deps, { action: 'finalize the seed in' });
      if (params.prepare) {
        // A hot backup is only consistent once its copied redo log is applied.
        const command = `${params.prepare} --prepare --target-dir=${shellQuote(mysql.datadir)}`;
        // Echoed so the step's operation output says what ran before the tool's own words.
        ctx.output('stderr', `$ ${command}\n`);
        const prepare = await ctx.run(command);
        if (prepare.exitCode !== 0) throw commandFailed(`${params.prepare} --prepare`, prepare);
      }
      await tidyReceivedDatadir(mysql.datadir, { preparedBackup: params.prepare !== undefined });
      if (mysql.user) {
        // -h: change symlinks themselves; a received symlink's target is never touched.
        const command = `chown -hR -- ${shellQuote(`${mysql.user}:`)} ${shellQuote(mysql.datadir)}`;
        ctx.output('stderr', `$ ${command}\n`);
        const chown = await ctx.run(command);
        if (chown.exitCode !== 0) throw commandFailed(`chown to ${mysql.user}`, chown);
      }
      // Checked again right before the datadir becomes startable (--prepare may have taken long).
      if (params.startMysql) await assertDatadirUnused(deps, { action: 'start MySQL on' });
      await removeIncompleteMarker(mysql.datadir);
      await dropReceiveState(ctx.config.stateDir);
      let started = false;
      if (params.startMysql) {
        ctx.output('stderr', `$ ${mysql.startCommand}\n`);
        const start = await ctx.run(mysql.startCommand, { timeoutMs: mysql.commandTimeoutSeconds * 1000 });
        if (start.exitCode !== 0) throw commandFailed('mysql.startCommand', start);
        started = true;
      }
      // Only a report, after the seed is complete: a status that does not answer reads as "not
      // running" rather than failing a finalize that already happened.
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
      const mysql = requireMysql(ctx.config);
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

function leaveAsItIs(ctx: OpContext, seedId: string, reason: string): OpResult<'seed-cleanup-target'> {
  ctx.log.warn({ seedId, reason }, 'seed-cleanup-target left the target as it is');
  return { result: { cleaned: false, reason: `target left as it is: ${reason}` } };
}

/** seed-receive of a tree seed: resumes from the checkpoint, or starts over into an emptied datadir. */
async function receiveSeedTree(ctx: OpContext<'seed-receive'>, mysql: MysqlConfig, params: ReceiveParams): Promise<OpResult<'seed-receive'>> {
  // After the previous receive of this lane has stored its resume point (receive-turns.ts).
  const endTurn = await receiveTurnsOf(ctx.config).take(`${params.seedId}/${params.lane?.index ?? 0}`, ctx.signal, undefined, () =>
    ctx.log.warn({ seedId: params.seedId, lane: params.lane?.index }, 'the previous seed-receive of this lane has not ended; receiving anyway'),
  );
  try {
    return await receiveLane(ctx, mysql, params);
  } finally {
    endTurn();
  }
}

async function receiveLane(ctx: OpContext<'seed-receive'>, mysql: MysqlConfig, params: ReceiveParams): Promise<OpResult<'seed-receive'>> {
  const deps = guardDeps(ctx, mysql);
  const { lane } = params;
  const contentHash = params.contentHash ?? 'sha256';
  const checkpoint = await openCheckpoint({ stateDir: ctx.config.stateDir, seedId: params.seedId, resume: params.resume, contentHash, ...(lane ? { lane } : {}) });
  if (checkpoint.discarded) ctx.log.warn({ seedId: params.seedId, lane: lane?.index, reason: checkpoint.discarded }, 'seed-receive starts over: its resume point cannot be used');
  const port = ctx.streams.openReceive(params.stream, params.data);
  try {
    if (checkpoint.resumed) {
      await assertDatadirUnused(deps, { action: 'resume receiving the seed into' });
    } else if (lane) {
      // One lane of several starting over must not empty what the other lanes wrote; the
      // datadir was emptied by seed-prepare-target, and this lane rewrites everything it carries.
      await assertDatadirUnused(deps, { action: 'start receiving the seed into' });
    } else {
      // A fresh start: nothing half-received may stay behind.
      await deleteDatadirContents(deps, { keep: [INCOMPLETE_MARKER], action: 'start receiving the seed into' });
    }
    const progress = reportReceived((data) => ctx.progress(data));
    const summary = await runWhileGuarded(deps, { action: 'keep receiving the seed into', ignoreOwnChildren: false }, (signal) =>
      receiveTree({
        root: mysql.datadir,
        port,
        checkpoint,
        signal,
        ...(params.maxBytes === undefined ? {} : { maxBytes: params.maxBytes }),
        allowExternalSymlinks: ctx.config.receive?.allowExternalSymlinks ?? false,
        contentHash,
        onStart: (offset) => progress.start(offset),
        onProgress: (latest) => progress.update(latest),
      }),
    );
    progress.flush();
    return { result: summary };
  } finally {
    port.close();
    await checkpoint.close();
  }
}

/** seed-receive of a backup seed: the xbstream goes through the extractor into an emptied datadir. */
async function receiveBackupStream(ctx: OpContext<'seed-receive'>, mysql: MysqlConfig, params: ReceiveParams): Promise<OpResult<'seed-receive'>> {
  const stateDir = ctx.config.stateDir;
  // No resume for a pipe: every attempt starts over into an emptied datadir (the marker stays).
  await dropReceiveState(stateDir);
  const deps = guardDeps(ctx, mysql);
  await deleteDatadirContents(deps, { keep: [INCOMPLETE_MARKER], action: 'start receiving the seed into' });
  const progress = reportReceived((data) => ctx.progress(data));
  const port = ctx.streams.openReceive(params.stream, params.data);
  try {
    // The extractor is the agent's own child writing into the datadir; it is not a server.
    const summary = await runWhileGuarded(deps, { action: 'keep receiving the seed into', ignoreOwnChildren: true }, (signal) =>
      receiveStream({
        root: mysql.datadir,
        port,
        extractor: extractorFor(params.backupTool ?? 'mariabackup', mysql.datadir),
        signal,
        killGraceMs: resolveTiming(ctx.config).killGraceMs,
        ...(params.maxBytes === undefined ? {} : { maxBytes: params.maxBytes }),
        onStart: (offset) => progress.start(offset),
        onProgress: (latest) => progress.update(latest),
        onOutput: (stream, text) => ctx.output(stream, text),
      }),
    );
    progress.flush();
    // What seed-finalize-target requires: the stream arrived whole, with this digest.
    await recordReceived(stateDir, params.seedId, summary);
    return { result: summary };
  } finally {
    port.close();
  }
}

/** seed-send of a tree seed (datadir or mounted snapshot), from the receiver's offset. */
async function sendSeedTree(ctx: OpContext<'seed-send'>, params: SendParams): Promise<OpResult<'seed-send'>> {
  if (params.source.kind === 'backup') throw new SeedwireError('SEEDWIRE_INTERNAL', 'a backup source is sent as a stream');
  const contentHash = params.contentHash ?? 'sha256';
  const cache = hashCachePath(ctx.config.stateDir, params.seedId, params.lane?.index, contentHash);
  await mkdir(ctx.config.stateDir, { recursive: true });
  const source = await acquireSource(ctx.config, params.source.kind, ctx.signal);
  return withSendPort(ctx, params, source.release, async (port, onProgress) => {
    const summary = await sendTree({
      root: source.root,
      port,
      offset: params.offset,
      compression: params.compression,
      ...(params.maxBytesPerSec ? { maxBytesPerSec: params.maxBytesPerSec } : {}),
      signal: ctx.signal,
      hashCachePath: cache,
      contentHash,
      ...(params.lane ? { lane: params.lane } : {}),
      onProgress,
    });
    // Both kinds: an earlier attempt may have hashed with the other one.
    await Promise.all(ContentHashSchema.options.map((name) => rm(hashCachePath(ctx.config.stateDir, params.seedId, params.lane?.index, name), { force: true })));
    const binlog = params.source.kind === 'datadir' ? await readBinlogCoordinates(source.root) : null;
    return binlog ? { ...summary, binlog } : summary;
  });
}

/** seed-send of a backup seed: the backup tool's stream, from offset 0 only. */
async function sendBackupStream(ctx: OpContext<'seed-send'>, params: SendParams): Promise<OpResult<'seed-send'>> {
  if (!ctx.config.backup) {
    throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'a backup seed needs the backup section: set backup.tool (mariabackup or xtrabackup) in the agent config');
  }
  if (params.offset !== 0) throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `a backup stream cannot resume: offset must be 0, not ${params.offset}`);
  await mkdir(ctx.config.stateDir, { recursive: true });
  return withSendPort(ctx, params, () => undefined, (port, onProgress) =>
    sendBackup({
      config: ctx.config,
      seedId: params.seedId,
      port,
      compression: params.compression,
      ...(params.maxBytesPerSec ? { maxBytesPerSec: params.maxBytesPerSec } : {}),
      signal: ctx.signal,
      killGraceMs: resolveTiming(ctx.config).killGraceMs,
      onProgress,
      onOutput: (stream, text) => ctx.output(stream, text),
    }),
  );
}

/**
 * The send port of a seed-send around `send`: progress reported, the port closed and `release`
 * called however it ends. Credit reaches the port as credit frames only (agent/transfer/credit.ts),
 * so the call's `limit` is not used.
 */
async function withSendPort(
  ctx: OpContext<'seed-send'>,
  params: SendParams,
  release: () => void,
  send: (port: SendPort, onProgress: (offset: number) => void) => Promise<SendSummary>,
): Promise<OpResult<'seed-send'>> {
  const progress = reportSent((data) => ctx.progress(data), params.offset);
  try {
    const port = ctx.streams.openSend(params.stream, params.data);
    try {
      const result = await send(port, (offset) => progress.update(offset));
      progress.flush();
      return { result };
    } finally {
      port.close();
    }
  } finally {
    release();
    ctx.log.info({ seedId: params.seedId, lane: params.lane?.index, stream: params.stream, from: params.offset, to: progress.sent, aborted: ctx.signal.aborted, source: params.source.kind }, 'seed-send ended');
  }
}
