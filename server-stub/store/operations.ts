/** The operations table (one row per operation, with its output counters and rolling tail). */
import type { Operation, OperationError, OperationState } from '../ops/types.js';
import type { AuditEntry } from '../types.js';
import { auditValues, INSERT_AUDIT } from './audit.js';
import { fromJsonColumn, toJsonColumn } from './json.js';
import { prepared, type SqlExecutor } from './sql.js';

const SELECT_BY_ID = prepared('SELECT * FROM operations WHERE id = ?');

interface RawOperation {
  id: string;
  agent_id: string;
  op: string;
  params: string;
  state: OperationState;
  created_at: string;
  ended_at: string | null;
  result: string | null;
  error: string | null;
  exit_code: number | null;
  actor: string;
  output_tail: string;
  seed_id: string | null;
}

function toOperation(raw: RawOperation): Operation {
  return {
    id: raw.id,
    agentId: raw.agent_id,
    op: raw.op,
    params: fromJsonColumn<Record<string, unknown>>(raw.params, {}),
    state: raw.state,
    createdAt: raw.created_at,
    endedAt: raw.ended_at,
    result: fromJsonColumn<unknown>(raw.result, null),
    error: fromJsonColumn<OperationError | null>(raw.error, null),
    exitCode: raw.exit_code,
    outputTail: raw.output_tail,
    actor: raw.actor,
    seedId: raw.seed_id,
  };
}

/** A new operation's row as the store reads it back, before it is written. */
function rawOf(op: NewOperation): RawOperation {
  return {
    id: op.id,
    agent_id: op.agentId,
    op: op.op,
    params: JSON.stringify(op.params),
    state: 'running',
    created_at: op.createdAt,
    ended_at: null,
    result: null,
    error: null,
    exit_code: null,
    actor: op.actor,
    output_tail: '',
    seed_id: op.seedId ?? null,
  };
}

export interface OperationEnd {
  state: Exclude<OperationState, 'running'>;
  endedAt: string;
  result: unknown;
  error: OperationError | null;
  exitCode: number | null;
}

export type NewOperation = Pick<Operation, 'id' | 'agentId' | 'op' | 'params' | 'createdAt' | 'actor'> & {
  /** The seed this operation is a step of. */
  seedId?: string | null;
};

export interface OperationFilter {
  agentId?: string;
  /** Only the steps of this seed. */
  seedId?: string;
  limit: number;
}

/** The audit row of an operation's end without what the row's final state decides. */
export type EndAudit = Omit<AuditEntry, 'outcome' | 'message'>;

/** The end's audit row: outcome and message are the operation's final state, whoever set it. */
export function endAuditRow(audit: EndAudit, final: Operation): AuditEntry {
  return { ...audit, outcome: final.state, message: final.error?.message ?? null };
}

export interface OperationStore {
  insert(op: NewOperation): Promise<Operation>;
  /**
   * An operation's row and its `started` audit row, committed together (on PostgreSQL one
   * statement, one round trip: this is on every operation's path).
   */
  start(op: NewOperation, audit: AuditEntry): Promise<Operation>;
  /**
   * An operation that ended before its row was written (a quick read-only one): its row, ended,
   * and both audit rows (`started`, then the end's per endAuditRow), committed together; one
   * statement on PostgreSQL.
   */
  record(op: NewOperation, started: AuditEntry, end: OperationEnd, endAudit: EndAudit): Promise<Operation>;
  /** Sets the final state once; returns false if the operation had already ended. */
  finish(id: string, end: OperationEnd): Promise<boolean>;
  /**
   * finish() and the end's audit row (endAuditRow: the final state, also when the operation had
   * already ended) committed together, one statement on PostgreSQL; returns the row as it is
   * then, or null (and writes nothing) when there is no such operation.
   */
  end(id: string, end: OperationEnd, audit: EndAudit): Promise<Operation | null>;
  /** Sets an ended operation running again (its call is re-sent under the same id, its output frames counted from 0 again); false if it was running. */
  reopen(id: string): Promise<boolean>;
  get(id: string): Promise<Operation | null>;
  /** Newest first; with `seedId`, that seed's steps in the order they started. */
  list(filter: OperationFilter): Promise<Operation[]>;
  listRunning(agentId?: string): Promise<Operation[]>;
  /** How many operations are in each state (for /metrics). */
  countByState(): Promise<Array<{ state: string; n: number }>>;
}

export function createOperationStore(sql: SqlExecutor): OperationStore {
  // Insertion order: SQLite's rowid; PostgreSQL's table has a serial column for it.
  const order = sql.dialect === 'sqlite' ? 'rowid' : 'seq';
  const insertRow = `INSERT INTO operations (id, agent_id, op, params, state, created_at, actor, seed_id) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)`;
  const insertValues = (op: NewOperation): unknown[] => [op.id, op.agentId, op.op, JSON.stringify(op.params), op.createdAt, op.actor, op.seedId ?? null];
  const finishRow = `UPDATE operations SET state = ?, ended_at = ?, result = ?, error = ?, exit_code = ? WHERE id = ? AND state = 'running'`;
  const finishValues = (id: string, end: OperationEnd): unknown[] => [end.state, end.endedAt, toJsonColumn(end.result), toJsonColumn(end.error), end.exitCode, id];
  // PostgreSQL: the row and its audit row in one statement (data-modifying CTEs commit together).
  // The end's audit row takes the outcome from the row as it ends up: updated here, or as an
  // earlier end left it (the UPDATE's RETURNING is empty then, and the plain read is used).
  const pgStart = prepared(`WITH op AS (${insertRow} RETURNING *), a AS (${INSERT_AUDIT}) SELECT * FROM op`);
  const pgEnd = prepared(`WITH f AS (${finishRow} RETURNING *),
    cur AS (SELECT * FROM f UNION ALL SELECT * FROM operations WHERE id = ? AND NOT EXISTS (SELECT 1 FROM f)),
    a AS (INSERT INTO audit (at, actor, agent_id, action, params, outcome, message) SELECT ?, ?, ?, ?, ?, state, error::json ->> 'message' FROM cur)
    SELECT * FROM cur`);
  const pgRecord = prepared(`WITH op AS (INSERT INTO operations (id, agent_id, op, params, state, created_at, actor, seed_id, ended_at, result, error, exit_code)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *),
    a AS (INSERT INTO audit (at, actor, agent_id, action, params, outcome, message) VALUES (?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?))
    SELECT * FROM op`);
  const store: OperationStore = {
    async insert(op) {
      await sql.run(insertRow, insertValues(op));
      return (await store.get(op.id))!;
    },
    async start(op, audit) {
      if (sql.dialect === 'postgres') return toOperation((await sql.get<RawOperation>(pgStart, [...insertValues(op), ...auditValues(audit)]))!);
      return sql.transaction(async (tx) => {
        await tx.run(insertRow, insertValues(op));
        await tx.run(INSERT_AUDIT, auditValues(audit));
        return toOperation((await tx.get<RawOperation>('SELECT * FROM operations WHERE id = ?', [op.id]))!);
      });
    },
    async record(op, started, end, endAudit) {
      // The final row is known before it is written: the end's audit row is built from it.
      const final: Operation = { ...toOperation({ ...rawOf(op), state: end.state }), endedAt: end.endedAt, result: end.result, error: end.error, exitCode: end.exitCode };
      const ended = endAuditRow(endAudit, final);
      if (sql.dialect === 'postgres') {
        const [id, agentId, name, params, createdAt, actor, seedId] = insertValues(op);
        const values = [id, agentId, name, params, end.state, createdAt, actor, seedId, end.endedAt, toJsonColumn(end.result), toJsonColumn(end.error), end.exitCode];
        return toOperation((await sql.get<RawOperation>(pgRecord, [...values, ...auditValues(started), ...auditValues(ended)]))!);
      }
      return sql.transaction(async (tx) => {
        await tx.run(insertRow, insertValues(op));
        await tx.run(finishRow, finishValues(op.id, end));
        await tx.run(INSERT_AUDIT, auditValues(started));
        await tx.run(INSERT_AUDIT, auditValues(ended));
        return toOperation((await tx.get<RawOperation>('SELECT * FROM operations WHERE id = ?', [op.id]))!);
      });
    },
    async finish(id, end) {
      const { changes } = await sql.run(finishRow, finishValues(id, end));
      return changes === 1;
    },
    async end(id, end, audit) {
      if (sql.dialect === 'postgres') {
        const raw = await sql.get<RawOperation>(pgEnd, [...finishValues(id, end), id, audit.at, audit.actor, audit.agentId, audit.action, toJsonColumn(audit.params)]);
        return raw ? toOperation(raw) : null;
      }
      return sql.transaction(async (tx) => {
        await tx.run(finishRow, finishValues(id, end));
        const raw = await tx.get<RawOperation>('SELECT * FROM operations WHERE id = ?', [id]);
        if (!raw) return null;
        const final = toOperation(raw);
        await tx.run(INSERT_AUDIT, auditValues(endAuditRow(audit, final)));
        return final;
      });
    },
    async reopen(id) {
      const { changes } = await sql.run(
        `UPDATE operations SET state = 'running', ended_at = NULL, result = NULL, error = NULL, exit_code = NULL, output_seq = -1 WHERE id = ? AND state != 'running'`,
        [id],
      );
      return changes === 1;
    },
    async get(id) {
      const raw = await sql.get<RawOperation>(SELECT_BY_ID, [id]);
      return raw ? toOperation(raw) : null;
    },
    async list({ agentId, seedId, limit }) {
      // Plain conditions per combination of filters, so the engine uses the agent's or the seed's
      // index (a `? IS NULL OR col = ?` condition would scan the table).
      const where: string[] = [];
      const params: unknown[] = [];
      if (agentId !== undefined) {
        where.push('agent_id = ?');
        params.push(agentId);
      }
      if (seedId !== undefined) {
        where.push('seed_id = ?');
        params.push(seedId);
      }
      const rows = await sql.all<RawOperation>(
        `SELECT * FROM operations ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${order} ${seedId === undefined ? 'DESC' : 'ASC'} LIMIT ?`,
        [...params, limit],
      );
      return rows.map(toOperation);
    },
    async listRunning(agentId) {
      const rows =
        agentId === undefined
          ? await sql.all<RawOperation>(`SELECT * FROM operations WHERE state = 'running' ORDER BY ${order}`)
          : await sql.all<RawOperation>(`SELECT * FROM operations WHERE state = 'running' AND agent_id = ? ORDER BY ${order}`, [agentId]);
      return rows.map(toOperation);
    },
    async countByState() {
      const rows = await sql.all<{ state: string; n: number | string }>('SELECT state, COUNT(*) AS n FROM operations GROUP BY state');
      return rows.map((row) => ({ state: row.state, n: Number(row.n) }));
    },
  };
  return store;
}
