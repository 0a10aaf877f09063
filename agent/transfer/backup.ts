/**
 * The source side of a `backup` seed (hot, no downtime): runs `mariabackup --backup
 * --stream=xbstream` (or `xtrabackup --backup --stream=xbstream`) against the running server and
 * sends its stdout through sendStream. seedwire stores no credentials: the tool connects over the
 * local socket as the agent's OS user (unix_socket authentication), or with whatever the DBA puts
 * in the tool's option files or `backup.extraArgs`.
 *
 * The tool runs in its own process group (killed SIGTERM then SIGKILL on abort); its stderr (one
 * line per copied file) goes to the op's output, bounded. The stream is checked on the way out
 * (XbstreamInspector: paths, file count, `xtrabackup_binlog_info`), and its end is only signalled
 * once the tool exited 0, so the target never takes a failed backup for a whole one.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Codec } from '../../shared/codec.js';
import { SeedwireError } from '../../shared/errors.js';
import type { AgentConfig } from '../config/schema.js';
import type { SendPort } from '../streams/types.js';
import { startToolChild, toolFailed, type ToolChild } from './child.js';
import { sendStream } from './send.js';
import { parseBinlogInfo, parseBinlogLine, XbstreamInspector } from './xbstream.js';

export type BackupTool = 'mariabackup' | 'xtrabackup';

export interface BinlogCoordinates {
  file: string;
  position: number;
  gtid?: string;
}

export interface BackupSendResult {
  files: number;
  bytes: number;
  digest: string;
  tool: BackupTool;
  binlog?: BinlogCoordinates;
}

export interface SendBackupOptions {
  config: AgentConfig;
  seedId: string;
  port: SendPort;
  compression: Codec;
  maxBytesPerSec?: number;
  signal: AbortSignal;
  killGraceMs: number;
  onProgress?: (sent: number) => void;
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
}

/** Options that must come first on a MySQL tool's command line. */
const LEADING_OPTIONS = /^--(no-defaults|defaults-file=|defaults-extra-file=|defaults-group-suffix=)/;

/** The backup command: program and arguments (no shell). */
export function backupCommand(backup: NonNullable<AgentConfig['backup']>, targetDir: string): { file: string; args: string[] } {
  const leading = backup.extraArgs.filter((a) => LEADING_OPTIONS.test(a));
  const rest = backup.extraArgs.filter((a) => !LEADING_OPTIONS.test(a));
  return {
    file: backup.tool,
    args: [...leading, '--backup', '--stream=xbstream', `--target-dir=${targetDir}`, ...(backup.socket ? [`--socket=${backup.socket}`] : []), ...rest],
  };
}

export async function sendBackup(options: SendBackupOptions): Promise<BackupSendResult> {
  const backup = options.config.backup;
  if (!backup) throw new SeedwireError('SEEDWIRE_OP_REFUSED', 'this agent has no backup section: set backup.tool (mariabackup or xtrabackup) in its config for a backup seed');
  // The tool's own scratch directory (with --stream it holds little); per seed, removed after.
  const targetDir = join(options.config.stateDir, `backup-${createHash('sha256').update(options.seedId).digest('hex').slice(0, 24)}`);
  await rm(targetDir, { recursive: true, force: true });
  await mkdir(targetDir, { recursive: true, mode: 0o700 });
  const command = backupCommand(backup, targetDir);
  let fromLog: BinlogCoordinates | null = null;
  const inspector = new XbstreamInspector();
  let child: ToolChild | null = null;
  try {
    child = startToolChild({
      file: command.file,
      args: command.args,
      cwd: targetDir,
      stdin: 'ignore',
      killGraceMs: options.killGraceMs,
      onStderrLine: (line) => {
        fromLog = parseBinlogLine(line) ?? fromLog;
      },
      ...(options.onOutput ? { onOutput: options.onOutput } : {}),
    });
    const tool = child;
    options.onOutput?.('stderr', `$ ${[command.file, ...command.args].join(' ')}\n`);
    async function* inspected(source: Readable): AsyncGenerator<Buffer> {
      for await (const piece of source) {
        const buf = piece as Buffer;
        inspector.push(buf);
        yield buf;
      }
    }
    const summary = await sendStream({
      input: Readable.from(inspected(tool.stdout)),
      port: options.port,
      offset: 0,
      compression: options.compression,
      ...(options.maxBytesPerSec ? { maxBytesPerSec: options.maxBytesPerSec } : {}),
      signal: options.signal,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      beforeEnd: async () => {
        const exit = await tool.exited;
        if (exit.code !== 0) throw toolFailed(`${command.file} --backup`, exit, tool.stderrTail());
        inspector.end();
      },
    });
    child = null;
    const info = inspector.capturedText('xtrabackup_binlog_info');
    const binlog = (info ? parseBinlogInfo(info) : null) ?? fromLog;
    return { files: inspector.files, bytes: summary.bytes, digest: summary.digest, tool: backup.tool, ...(binlog ? { binlog } : {}) };
  } catch (error) {
    // Aborted, link dropped, or a bad stream: the tool must not outlive the send.
    if (child) await child.stop();
    throw error;
  } finally {
    await rm(targetDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
