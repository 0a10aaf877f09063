/**
 * Persistence of seeds and their stages (SQLite or PostgreSQL, through the store's SqlExecutor):
 * everything the state machine needs to resume after a controller restart lives here, written
 * before the step it describes runs (callers await each write). The tables are created by the
 * store's migrations (server-stub/store/migrations.ts, postgres-migrations.ts).
 */
import { z } from 'zod';
import { SeedResultSchema, SendSummarySchema, TransferSummarySchema, type SeedResult } from '../../shared/ops.js';
import type { SqlExecutor } from '../store/sql.js';
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
  owner: string | null;
  owner_url: string | null;
  lease_expires_at: number | null;
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

/** Who drives a seed (cluster mode): a controller's lease owner id and the URL agents reach it at. */
export interface LeaseHolder {
  owner: string;
  ownerUrl: string | null;
}

/** A seed's lease as stored: `expiresAt` in ms since the epoch on the store's clock. */
export interface SeedLease {
  owner: string | null;
  ownerUrl: string | null;
  expiresAt: number | null;
}

/** A lease renewed or checked: the seed's id and whether an abort was asked for meanwhile (on any controller). */
export interface HeldLease {
  id: string;
  abortRequested: boolean;
}

/**
 * The store's clock as SQL, in ms since the epoch: PostgreSQL's own (every controller on the
 * database then agrees on when a lease ends, whatever their clocks), SQLite's the process's.
 */
function nowMsSql(dialect: SqlExecutor['dialect']): string {
  return dialect === 'postgres' ? `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT` : `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`;
}

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
  constructor(private readonly sql: SqlExecutor) {}

  /** `lease`: the seed is owned from its first row on (no other controller can claim it in between). */
  async create(seed: NewSeed, lease: (LeaseHolder & { leaseMs: number }) | null = null): Promise<void> {
    const at = now();
    await this.sql.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO seeds (id, source, target, method, compression, effective_compression, start_target, max_bytes_per_sec, lanes, state, stage, bytes_total, created_at, owner, owner_url, lease_expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', 'precheck', ?, ?, ?, ?, ${lease ? `${nowMsSql(this.sql.dialect)} + ?` : 'NULL'})`,
        [
          seed.id,
          seed.source,
          seed.target,
          seed.method,
          seed.compression,
          seed.effectiveCompression,
          seed.startTarget ? 1 : 0,
          seed.maxBytesPerSec,
          seed.lanes,
          seed.bytesTotal,
          at,
          lease?.owner ?? null,
          lease?.ownerUrl ?? null,
          ...(lease ? [lease.leaseMs] : []),
        ],
      );
      for (const [ord, name] of SEED_STAGES.entries()) {
        await tx.run(`INSERT INTO seed_stages (seed_id, name, ord, state) VALUES (?, ?, ?, 'pending')`, [seed.id, name, ord]);
      }
    });
  }

  async get(id: string): Promise<SeedView | null> {
    const row = await this.sql.get<SeedRow>(`SELECT * FROM seeds WHERE id = ?`, [id]);
    return row ? (await this.toViews([row]))[0]! : null;
  }

  async list(limit = 100): Promise<SeedView[]> {
    return this.toViews(await this.sql.all<SeedRow>(`SELECT * FROM seeds ORDER BY created_at DESC LIMIT ?`, [limit]));
  }

  /** Seeds a controller restart must pick up again. */
  async listUnfinished(): Promise<SeedView[]> {
    return this.toViews(await this.sql.all<SeedRow>(`SELECT * FROM seeds WHERE state IN ('pending', 'running') ORDER BY created_at`));
  }

  /** The active seed using this agent on either side, if any. */
  async activeFor(agentId: string): Promise<string | null> {
    const row = await this.sql.get<{ id: string }>(`SELECT id FROM seeds WHERE state IN ('pending', 'running') AND (source = ? OR target = ?) LIMIT 1`, [agentId, agentId]);
    return row?.id ?? null;
  }

  // ---- leases (cluster mode: several controllers on one store; docs/scale-out.md) ----------

  /** The store's clock, ms since the epoch (PostgreSQL's on that engine). */
  async clock(): Promise<number> {
    const row = await this.sql.get<{ now: number | string }>(`SELECT ${nowMsSql(this.sql.dialect)} AS now`);
    return Number(row?.now);
  }

  async lease(id: string): Promise<SeedLease | null> {
    const row = await this.sql.get<Pick<SeedRow, 'owner' | 'owner_url' | 'lease_expires_at'>>(`SELECT owner, owner_url, lease_expires_at FROM seeds WHERE id = ?`, [id]);
    return row ? { owner: row.owner, ownerUrl: row.owner_url, expiresAt: row.lease_expires_at === null ? null : Number(row.lease_expires_at) } : null;
  }

  /**
   * Takes an unfinished seed's lease for `holder` when nobody holds it, `holder` already does, or
   * the holder's lease has expired on the store's clock: one conditional UPDATE, so of controllers
   * claiming together exactly one wins. Resolves with the lease as it was before (for the audit),
   * or null when the claim lost.
   */
  async claimLease(id: string, holder: LeaseHolder, leaseMs: number): Promise<SeedLease | null> {
    const before = await this.lease(id);
    if (!before) return null;
    const clock = nowMsSql(this.sql.dialect);
    const { changes } = await this.sql.run(
      `UPDATE seeds SET owner = ?, owner_url = ?, lease_expires_at = ${clock} + ?
         WHERE id = ? AND state IN ('pending', 'running') AND (owner IS NULL OR owner = ? OR lease_expires_at IS NULL OR lease_expires_at < ${clock})`,
      [holder.owner, holder.ownerUrl, leaseMs, id, holder.owner],
    );
    return changes === 1 ? before : null;
  }

  /**
   * Extends one seed's lease if `owner` still holds it (the fencing check before a step): null
   * when another controller took it. A lease that expired but nobody took is still this owner's.
   */
  async checkLease(id: string, owner: string, leaseMs: number): Promise<HeldLease | null> {
    const row = await this.sql.get<{ id: string; abort_requested: number }>(
      `UPDATE seeds SET lease_expires_at = ${nowMsSql(this.sql.dialect)} + ? WHERE id = ? AND owner = ? RETURNING id, abort_requested`,
      [leaseMs, id, owner],
    );
    return row ? { id: row.id, abortRequested: row.abort_requested === 1 } : null;
  }

  /** Extends every unfinished seed's lease `owner` holds, in one statement; returns them. */
  async renewLeases(owner: string, leaseMs: number): Promise<HeldLease[]> {
    const rows = await this.sql.all<{ id: string; abort_requested: number }>(
      `UPDATE seeds SET lease_expires_at = ${nowMsSql(this.sql.dialect)} + ? WHERE owner = ? AND state IN ('pending', 'running') RETURNING id, abort_requested`,
      [leaseMs, owner],
    );
    return rows.map((row) => ({ id: row.id, abortRequested: row.abort_requested === 1 }));
  }

  /** Ends `owner`'s leases at once (a graceful stop): another controller may adopt them now. */
  async releaseLeases(owner: string): Promise<number> {
    const { changes } = await this.sql.run(`UPDATE seeds SET lease_expires_at = 0 WHERE owner = ? AND state IN ('pending', 'running')`, [owner]);
    return changes;
  }

  /** Unfinished seeds `owner` may claim now (unowned, its own, or expired), oldest first. */
  async claimable(owner: string): Promise<string[]> {
    const clock = nowMsSql(this.sql.dialect);
    const rows = await this.sql.all<{ id: string }>(
      `SELECT id FROM seeds WHERE state IN ('pending', 'running') AND (owner IS NULL OR owner = ? OR lease_expires_at IS NULL OR lease_expires_at < ${clock}) ORDER BY created_at`,
      [owner],
    );
    return rows.map((row) => row.id);
  }

  /** How many seeds are in each state (for /metrics). */
  async countByState(): Promise<Array<{ state: string; n: number }>> {
    const rows = await this.sql.all<{ state: string; n: number | string }>('SELECT state, COUNT(*) AS n FROM seeds GROUP BY state');
    return rows.map((row) => ({ state: row.state, n: Number(row.n) }));
  }

  async internals(id: string): Promise<SeedInternals> {
    const row = await this.sql.get<Pick<SeedRow, 'snapshot_name' | 'source_stopped' | 'transfer' | 'abort_requested'>>(
      `SELECT snapshot_name, source_stopped, transfer, abort_requested FROM seeds WHERE id = ?`,
      [id],
    );
    return {
      snapshotName: row?.snapshot_name ?? null,
      sourceStopped: row?.source_stopped === 1,
      transfer: row?.transfer ? StoredTransferSchema.parse(JSON.parse(row.transfer)) : null,
      abortRequested: row?.abort_requested === 1,
    };
  }

  async setSnapshotName(id: string, name: string | null): Promise<void> {
    await this.sql.run(`UPDATE seeds SET snapshot_name = ? WHERE id = ?`, [name, id]);
  }
  async setSourceStopped(id: string, stopped: boolean): Promise<void> {
    await this.sql.run(`UPDATE seeds SET source_stopped = ? WHERE id = ?`, [stopped ? 1 : 0, id]);
  }
  async setTransfer(id: string, transfer: SeedInternals['transfer']): Promise<void> {
    await this.sql.run(`UPDATE seeds SET transfer = ? WHERE id = ?`, [transfer ? JSON.stringify(transfer) : null, id]);
  }
  async requestAbort(id: string): Promise<void> {
    await this.sql.run(`UPDATE seeds SET abort_requested = 1 WHERE id = ?`, [id]);
  }
  async nextAttempt(id: string): Promise<number> {
    const row = await this.sql.get<{ attempts: number }>(`UPDATE seeds SET attempts = attempts + 1 WHERE id = ? RETURNING attempts`, [id]);
    return row?.attempts ?? 0;
  }
  async setProgress(id: string, bytesDone: number, bytesTotal?: number | null): Promise<void> {
    if (bytesTotal === undefined) await this.sql.run(`UPDATE seeds SET bytes_done = ? WHERE id = ?`, [bytesDone, id]);
    else await this.sql.run(`UPDATE seeds SET bytes_done = ?, bytes_total = ? WHERE id = ?`, [bytesDone, bytesTotal, id]);
  }

  async startStage(id: string, stage: StageName, message: string | null = null): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.run(`UPDATE seeds SET stage = ? WHERE id = ?`, [stage, id]);
      await tx.run(`UPDATE seed_stages SET state = 'running', started_at = COALESCE(started_at, ?), ended_at = NULL, message = ? WHERE seed_id = ? AND name = ?`, [now(), message, id, stage]);
    });
  }

  async setStageMessage(id: string, stage: StageName, message: string): Promise<void> {
    await this.sql.run(`UPDATE seed_stages SET message = ? WHERE seed_id = ? AND name = ?`, [message, id, stage]);
  }

  async endStage(id: string, stage: StageName, state: Exclude<StageState, 'pending' | 'running'>, message: string | null = null): Promise<void> {
    await this.sql.run(`UPDATE seed_stages SET state = ?, started_at = COALESCE(started_at, ?), ended_at = ?, message = COALESCE(?, message) WHERE seed_id = ? AND name = ?`, [
      state,
      now(),
      now(),
      message,
      id,
      stage,
    ]);
  }

  async finish(id: string, state: 'succeeded' | 'failed' | 'aborted', error: { code: string; message: string } | null, result: SeedResult | null): Promise<void> {
    await this.sql.run(`UPDATE seeds SET state = ?, ended_at = ?, error = ?, result = COALESCE(?, result) WHERE id = ?`, [
      state,
      now(),
      error ? JSON.stringify(error) : null,
      result ? JSON.stringify(result) : null,
      id,
    ]);
  }

  async setResult(id: string, result: SeedResult): Promise<void> {
    await this.sql.run(`UPDATE seeds SET result = ? WHERE id = ?`, [JSON.stringify(result), id]);
  }

  /** Rows as the API shows them, with their stages read in one query. */
  private async toViews(rows: SeedRow[]): Promise<SeedView[]> {
    if (rows.length === 0) return [];
    const stageRows = await this.sql.all<StageRow & { seed_id: string }>(
      `SELECT seed_id, name, state, started_at, ended_at, message FROM seed_stages WHERE seed_id IN (${rows.map(() => '?').join(', ')}) ORDER BY seed_id, ord`,
      rows.map((row) => row.id),
    );
    const stagesOf = new Map<string, StageView[]>();
    for (const s of stageRows) {
      const list = stagesOf.get(s.seed_id) ?? [];
      list.push({ name: s.name as StageName, state: s.state as StageState, startedAt: s.started_at, endedAt: s.ended_at, message: s.message });
      stagesOf.set(s.seed_id, list);
    }
    return rows.map((row) => toView(row, stagesOf.get(row.id) ?? []));
  }
}

function toView(row: SeedRow, stages: StageView[]): SeedView {
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
