/** The operations table (one row per operation, with its output counters and rolling tail). */
import type { Operation, OperationError, OperationState } from '../ops/types.js';
import { fromJsonColumn, toJsonColumn } from './json.js';
import type { SqlExecutor } from './sql.js';

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

export interface OperationStore {
  insert(op: NewOperation): Promise<Operation>;
  /** Sets the final state once; returns false if the operation had already ended. */
  finish(id: string, end: OperationEnd): Promise<boolean>;
  /** Sets an ended operation running again (its call is re-sent under the same id); false if it was running. */
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
  const store: OperationStore = {
    async insert(op) {
      await sql.run(
        `INSERT INTO operations (id, agent_id, op, params, state, created_at, actor, seed_id) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)`,
        [op.id, op.agentId, op.op, JSON.stringify(op.params), op.createdAt, op.actor, op.seedId ?? null],
      );
      return (await store.get(op.id))!;
    },
    async finish(id, end) {
      const { changes } = await sql.run(`UPDATE operations SET state = ?, ended_at = ?, result = ?, error = ?, exit_code = ? WHERE id = ? AND state = 'running'`, [
        end.state,
        end.endedAt,
        toJsonColumn(end.result),
        toJsonColumn(end.error),
        end.exitCode,
        id,
      ]);
      return changes === 1;
    },
    async reopen(id) {
      const { changes } = await sql.run(
        `UPDATE operations SET state = 'running', ended_at = NULL, result = NULL, error = NULL, exit_code = NULL WHERE id = ? AND state != 'running'`,
        [id],
      );
      return changes === 1;
    },
    async get(id) {
      const raw = await sql.get<RawOperation>('SELECT * FROM operations WHERE id = ?', [id]);
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
