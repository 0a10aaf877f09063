/**
 * SQLite persistence of seeds and their stages: everything the state machine needs to resume
 * after a controller restart lives here, written before the step it describes runs. The tables
 * are created by the store's migrations (server-stub/store/migrations.ts).
 */
import { z } from 'zod';
import { SeedResultSchema, SendSummarySchema, TransferSummarySchema, type SeedResult } from '../../shared/ops.js';
import type Database from 'better-sqlite3';
import { SEED_STAGES, type SeedView, type StageName, type StageState, type StageView } from './types.js';

interface SeedRow {
  id: string;
  source: string;
  target: string;
  method: string;
  compression: string;
  effective_compression: string;
  start_target: number;
  max_bytes_per_sec: number | null;
  lanes: number;
  state: string;
  stage: string | null;
  bytes_total: number | null;
  bytes_done: number;
  created_at: string;
  ended_at: string | null;
  error: string | null;
  result: string | null;
  attempts: number;
  snapshot_name: string | null;
  source_stopped: number;
  transfer: string | null;
  abort_requested: number;
}

interface StageRow {
  name: string;
  state: string;
  started_at: string | null;
  ended_at: string | null;
  message: string | null;
}

/** What the machine keeps between steps (beyond the API view). */
export interface SeedInternals {
  snapshotName: string | null;
  sourceStopped: boolean;
  /** Results of the transfer's two sides once it finished. */
  transfer: StoredTransfer | null;
  abortRequested: boolean;
}

/** Both sides' summaries, kept between the transfer and the verify/finalize stages (a restart may fall between). */
const StoredTransferSchema = z.object({ sent: SendSummarySchema, received: TransferSummarySchema });
export type StoredTransfer = z.infer<typeof StoredTransferSchema>;

export type NewSeed = Pick<SeedView, 'id' | 'source' | 'target' | 'method' | 'compression' | 'effectiveCompression' | 'startTarget' | 'maxBytesPerSec' | 'lanes' | 'bytesTotal'>;

function now(): string {
  return new Date().toISOString();
}

/**
 * Attempts as "1 + resumes": the stored counter numbers every lane's attempts (call ids stay
 * unique), so over several lanes each lane's first attempt counts once.
 */
function attemptsShown(counter: number, lanes: number): number {
  return lanes > 1 && counter > 0 ? Math.max(1, counter - (lanes - 1)) : counter;
}

export class SeedStore {
  constructor(private readonly db: Database.Database) {}

  create(seed: NewSeed): void {
    const at = now();
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO seeds (id, source, target, method, compression, effective_compression, start_target, max_bytes_per_sec, lanes, state, stage, bytes_total, created_at)
           VALUES (@id, @source, @target, @method, @compression, @effectiveCompression, @startTarget, @maxBytesPerSec, @lanes, 'running', 'precheck', @bytesTotal, @at)`,
        )
        .run({ ...seed, startTarget: seed.startTarget ? 1 : 0, at });
      const insert = this.db.prepare(`INSERT INTO seed_stages (seed_id, name, ord, state) VALUES (?, ?, ?, 'pending')`);
      SEED_STAGES.forEach((name, ord) => insert.run(seed.id, name, ord));
    })();
  }

  get(id: string): SeedView | null {
    const row = this.db.prepare(`SELECT * FROM seeds WHERE id = ?`).get(id) as SeedRow | undefined;
    return row ? this.toView(row) : null;
  }

  list(limit = 100): SeedView[] {
    const rows = this.db.prepare(`SELECT * FROM seeds ORDER BY created_at DESC LIMIT ?`).all(limit) as SeedRow[];
    return rows.map((row) => this.toView(row));
  }

  /** Seeds a controller restart must pick up again. */
  listUnfinished(): SeedView[] {
    const rows = this.db.prepare(`SELECT * FROM seeds WHERE state IN ('pending', 'running') ORDER BY created_at`).all() as SeedRow[];
    return rows.map((row) => this.toView(row));
  }

  /** The active seed using this agent on either side, if any. */
  activeFor(agentId: string): string | null {
    const row = this.db
      .prepare(`SELECT id FROM seeds WHERE state IN ('pending', 'running') AND (source = ? OR target = ?) LIMIT 1`)
      .get(agentId, agentId) as { id: string } | undefined;
    return row?.id ?? null;
  }

  internals(id: string): SeedInternals {
    const row = this.db.prepare(`SELECT snapshot_name, source_stopped, transfer, abort_requested FROM seeds WHERE id = ?`).get(id) as
      | Pick<SeedRow, 'snapshot_name' | 'source_stopped' | 'transfer' | 'abort_requested'>
      | undefined;
    return {
      snapshotName: row?.snapshot_name ?? null,
      sourceStopped: row?.source_stopped === 1,
      transfer: row?.transfer ? StoredTransferSchema.parse(JSON.parse(row.transfer)) : null,
      abortRequested: row?.abort_requested === 1,
    };
  }

  setSnapshotName(id: string, name: string | null): void {
    this.db.prepare(`UPDATE seeds SET snapshot_name = ? WHERE id = ?`).run(name, id);
  }
  setSourceStopped(id: string, stopped: boolean): void {
    this.db.prepare(`UPDATE seeds SET source_stopped = ? WHERE id = ?`).run(stopped ? 1 : 0, id);
  }
  setTransfer(id: string, transfer: SeedInternals['transfer']): void {
    this.db.prepare(`UPDATE seeds SET transfer = ? WHERE id = ?`).run(transfer ? JSON.stringify(transfer) : null, id);
  }
  requestAbort(id: string): void {
    this.db.prepare(`UPDATE seeds SET abort_requested = 1 WHERE id = ?`).run(id);
  }
  nextAttempt(id: string): number {
    this.db.prepare(`UPDATE seeds SET attempts = attempts + 1 WHERE id = ?`).run(id);
    return (this.db.prepare(`SELECT attempts FROM seeds WHERE id = ?`).get(id) as { attempts: number }).attempts;
  }
  setProgress(id: string, bytesDone: number, bytesTotal?: number | null): void {
    if (bytesTotal === undefined) this.db.prepare(`UPDATE seeds SET bytes_done = ? WHERE id = ?`).run(bytesDone, id);
    else this.db.prepare(`UPDATE seeds SET bytes_done = ?, bytes_total = ? WHERE id = ?`).run(bytesDone, bytesTotal, id);
  }

  startStage(id: string, stage: StageName, message: string | null = null): void {
    this.db.transaction(() => {
      this.db.prepare(`UPDATE seeds SET stage = ? WHERE id = ?`).run(stage, id);
      this.db
        .prepare(`UPDATE seed_stages SET state = 'running', started_at = COALESCE(started_at, ?), ended_at = NULL, message = ? WHERE seed_id = ? AND name = ?`)
        .run(now(), message, id, stage);
    })();
  }

  setStageMessage(id: string, stage: StageName, message: string): void {
    this.db.prepare(`UPDATE seed_stages SET message = ? WHERE seed_id = ? AND name = ?`).run(message, id, stage);
  }

  endStage(id: string, stage: StageName, state: Exclude<StageState, 'pending' | 'running'>, message: string | null = null): void {
    this.db
      .prepare(`UPDATE seed_stages SET state = ?, started_at = COALESCE(started_at, ?), ended_at = ?, message = COALESCE(?, message) WHERE seed_id = ? AND name = ?`)
      .run(state, now(), now(), message, id, stage);
  }

  finish(id: string, state: 'succeeded' | 'failed' | 'aborted', error: { code: string; message: string } | null, result: SeedResult | null): void {
    this.db
      .prepare(`UPDATE seeds SET state = ?, ended_at = ?, error = ?, result = COALESCE(?, result) WHERE id = ?`)
      .run(state, now(), error ? JSON.stringify(error) : null, result ? JSON.stringify(result) : null, id);
  }

  setResult(id: string, result: SeedResult): void {
    this.db.prepare(`UPDATE seeds SET result = ? WHERE id = ?`).run(JSON.stringify(result), id);
  }

  private toView(row: SeedRow): SeedView {
    const stages = (this.db.prepare(`SELECT name, state, started_at, ended_at, message FROM seed_stages WHERE seed_id = ? ORDER BY ord`).all(row.id) as StageRow[]).map(
      (s): StageView => ({ name: s.name as StageName, state: s.state as StageState, startedAt: s.started_at, endedAt: s.ended_at, message: s.message }),
    );
    return {
      id: row.id,
      source: row.source,
      target: row.target,
      method: row.method as SeedView['method'],
      compression: row.compression as SeedView['compression'],
      effectiveCompression: row.effective_compression as SeedView['effectiveCompression'],
      startTarget: row.start_target === 1,
      maxBytesPerSec: row.max_bytes_per_sec,
      lanes: row.lanes,
      state: row.state as SeedView['state'],
      stage: row.stage as StageName | null,
      bytesTotal: row.bytes_total,
      bytesDone: row.bytes_done,
      bytesPerSec: null,
      etaSeconds: null,
      createdAt: row.created_at,
      endedAt: row.ended_at,
      error: row.error ? (JSON.parse(row.error) as SeedView['error']) : null,
      result: row.result ? SeedResultSchema.parse(JSON.parse(row.result)) : null,
      attempts: attemptsShown(row.attempts, row.lanes),
      stages,
    };
  }
}
