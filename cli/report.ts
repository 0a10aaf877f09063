/** What a person reads about a seed: a one-line status, the stage table, the replication coordinates. */
import type { Facts, Operation, SeedView } from '../client/api.js';
import { SeedResultSchema, type SeedResult } from '../shared/ops.js';
import { formatBytes, formatDuration, formatRate, formatTime, percent, renderTable, secondsBetween } from './format.js';

export type BinlogCoordinates = NonNullable<SeedResult['binlog']>;

/** The seed's result if it has the documented shape (a controller of another version may differ). */
function resultOf(seed: SeedView): SeedResult | null {
  const parsed = SeedResultSchema.safeParse(seed.result);
  return parsed.success ? parsed.data : null;
}

export function binlogOf(seed: SeedView): BinlogCoordinates | null {
  const binlog = resultOf(seed)?.binlog;
  if (!binlog) return null;
  return { file: binlog.file, position: binlog.position, ...(binlog.gtid ? { gtid: binlog.gtid } : {}) };
}

/** A SQL string literal. */
function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The statement that attaches the new host as a replica at the copy's coordinates. The host and
 * port are the source's, from its facts; the replication account is the operator's to fill in.
 */
export function changeMasterStatement(binlog: BinlogCoordinates, source: { host: string; port: number | null }): string {
  const parts = [
    `MASTER_HOST=${sqlString(source.host)}`,
    `MASTER_PORT=${source.port ?? 3306}`,
    `MASTER_USER='<replication user>'`,
    `MASTER_PASSWORD='<password>'`,
    `MASTER_LOG_FILE=${sqlString(binlog.file)}`,
    `MASTER_LOG_POS=${binlog.position}`,
  ];
  return `CHANGE MASTER TO ${parts.join(', ')};`;
}

/** One line: where the seed is. Used by the plain (non-TTY) follower and by `seed show`. */
export function progressLine(seed: SeedView): string {
  const parts = [`seed ${seed.id}: ${seed.state}`];
  if (seed.stage) parts.push(`stage ${seed.stage}`);
  if (seed.bytesTotal !== null) parts.push(`${percent(seed.bytesDone, seed.bytesTotal)} ${formatBytes(seed.bytesDone)}/${formatBytes(seed.bytesTotal)}`);
  if (seed.state === 'running' && seed.bytesPerSec !== null) parts.push(formatRate(seed.bytesPerSec));
  if (seed.state === 'running' && seed.etaSeconds !== null) parts.push(`ETA ${formatDuration(seed.etaSeconds)}`);
  parts.push(`attempt ${Math.max(1, seed.attempts)}`);
  return parts.join(' · ');
}

export function renderStages(seed: SeedView, now: number): string {
  const rows = seed.stages.map((s) => [s.name, s.state, formatTime(s.startedAt), formatDuration(secondsBetween(s.startedAt, s.endedAt, now)), s.message ?? '']);
  return renderTable(['stage', 'state', 'started', 'took', 'message'], rows);
}

/**
 * A seed's agent-side steps (its operations, in the order they ran), then the last lines of
 * each failed step's output: the step's own words (a `--prepare` or a start command that failed).
 */
export function renderSteps(steps: Operation[], now: number): string {
  if (steps.length === 0) return 'steps: none recorded\n';
  const rows = steps.map((s) => [s.id, s.op, s.agentId, s.state, s.exitCode ?? '-', formatDuration(secondsBetween(s.createdAt, s.endedAt, now))]);
  const lines = [renderTable(['step (operation id)', 'op', 'agent', 'state', 'exit', 'took'], rows).trimEnd()];
  for (const step of steps) {
    if (step.state !== 'failed' || step.outputTail.trim() === '') continue;
    const tail = step.outputTail.trimEnd().split('\n').slice(-10);
    lines.push('', `output of ${step.id} (last lines; all of it: GET /api/operations/${step.id}/output):`, ...tail.map((line) => `  ${line}`));
  }
  return `${lines.join('\n')}\n`;
}

/** ", N lanes" for a seed over several lanes (older controllers do not report lanes). */
function lanesNote(seed: SeedView): string {
  return seed.lanes > 1 ? `, ${seed.lanes} lanes` : '';
}

/** The whole report: status, stages, and for a finished seed its result and coordinates. */
export function renderSeedReport(seed: SeedView, sourceFacts: Facts | null, now: number): string {
  const lines: string[] = [];
  const took = formatDuration(secondsBetween(seed.createdAt, seed.endedAt, now));
  lines.push(`seed ${seed.id}: ${seed.method} seed ${seed.source} → ${seed.target}, ${seed.state}${seed.endedAt ? ` after ${took}` : ''}`);
  if (seed.state === 'running' || seed.state === 'pending') lines.push(progressLine(seed));
  if (seed.error) lines.push(`error: ${seed.error.message} (${seed.error.code})`);
  lines.push('', renderStages(seed, now).trimEnd());
  const result = resultOf(seed);
  if (result) {
    lines.push('', `copied ${formatBytes(result.bytes)} in ${result.files} files, ${seed.attempts} attempt${seed.attempts === 1 ? '' : 's'}, compression ${seed.effectiveCompression}${lanesNote(seed)}`);
    lines.push(`digest ${result.digest}`);
  }
  if (seed.state === 'succeeded') {
    const binlog = binlogOf(seed);
    lines.push('');
    if (binlog) {
      lines.push(`replication coordinates: file ${binlog.file}, position ${binlog.position}${binlog.gtid ? `, GTID ${binlog.gtid}` : ''}`);
      const source = { host: sourceFacts?.hostname ?? seed.source, port: sourceFacts?.mysqlPort ?? null };
      lines.push(`to make ${seed.target} a replica of ${seed.source}, run on ${seed.target}:`, `  ${changeMasterStatement(binlog, source)}`, '  START SLAVE;');
      if (binlog.gtid) lines.push(`  (or by GTID: SET GLOBAL gtid_slave_pos = ${sqlString(binlog.gtid)}; then MASTER_USE_GTID=slave_pos instead of the file and position)`);
    } else {
      lines.push('replication coordinates: none (the source has no binary log)');
    }
  }
  return `${lines.join('\n')}\n`;
}
