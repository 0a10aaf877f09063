/** The operations table (one row per operation, with its output counters and rolling tail). */
import type Database from 'better-sqlite3';
import type { Operation, OperationError, OperationState } from '../ops/types.js';
import { fromJsonColumn, toJsonColumn } from './json.js';

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
  insert(op: NewOperation): Operation;
  /** Sets the final state once; returns false if the operation had already ended. */
  finish(id: string, end: OperationEnd): boolean;
  /** Sets an ended operation running again (its call is re-sent under the same id); false if it was running. */
  reopen(id: string): boolean;
  get(id: string): Operation | null;
  /** Newest first; with `seedId`, that seed's steps in the order they started. */
  list(filter: OperationFilter): Operation[];
  listRunning(agentId?: string): Operation[];
}

export function createOperationStore(db: Database.Database): OperationStore {
  const insert = db.prepare(`INSERT INTO operations (id, agent_id, op, params, state, created_at, actor, seed_id)
    VALUES (@id, @agentId, @op, @params, 'running', @createdAt, @actor, @seedId)`);
  const reopen = db.prepare(`UPDATE operations SET state = 'running', ended_at = NULL, result = NULL, error = NULL, exit_code = NULL
    WHERE id = ? AND state != 'running'`);
  const finish = db.prepare(`UPDATE operations SET state = @state, ended_at = @endedAt, result = @result, error = @error,
    exit_code = @exitCode WHERE id = @id AND state = 'running'`);
  const selectOne = db.prepare('SELECT * FROM operations WHERE id = ?');
  // One statement per combination of filters, each plain enough for SQLite to use the agent's or
  // the seed's index (a `@x IS NULL OR col = @x` condition would scan the table).
  const selectRecent = new Map<string, Database.Statement>();
  function selectRecentFor(filter: { agentId: boolean; seedId: boolean }): Database.Statement {
    const key = `${filter.agentId}/${filter.seedId}`;
    let statement = selectRecent.get(key);
    if (!statement) {
      const where = [filter.agentId ? 'agent_id = @agentId' : null, filter.seedId ? 'seed_id = @seedId' : null].filter((c) => c !== null);
      statement = db.prepare(`SELECT * FROM operations ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY rowid ${filter.seedId ? 'ASC' : 'DESC'} LIMIT @limit`);
      selectRecent.set(key, statement);
    }
    return statement;
  }
  const selectRunning = db.prepare("SELECT * FROM operations WHERE state = 'running' ORDER BY rowid");
  const selectRunningByAgent = db.prepare("SELECT * FROM operations WHERE state = 'running' AND agent_id = ? ORDER BY rowid");
  const store: OperationStore = {
    insert(op) {
      insert.run({ id: op.id, agentId: op.agentId, op: op.op, params: JSON.stringify(op.params), createdAt: op.createdAt, actor: op.actor, seedId: op.seedId ?? null });
      return store.get(op.id)!;
    },
    finish(id, end) {
      const info = finish.run({ id, ...end, result: toJsonColumn(end.result), error: toJsonColumn(end.error) });
      return info.changes === 1;
    },
    reopen(id) {
      return reopen.run(id).changes === 1;
    },
    get(id) {
      const raw = selectOne.get(id) as RawOperation | undefined;
      return raw ? toOperation(raw) : null;
    },
    list({ agentId, seedId, limit }) {
      const statement = selectRecentFor({ agentId: agentId !== undefined, seedId: seedId !== undefined });
      const rows = statement.all({ limit, ...(agentId === undefined ? {} : { agentId }), ...(seedId === undefined ? {} : { seedId }) });
      return (rows as RawOperation[]).map(toOperation);
    },
    listRunning(agentId) {
      const rows = agentId === undefined ? selectRunning.all() : selectRunningByAgent.all(agentId);
      return (rows as RawOperation[]).map(toOperation);
    },
  };
  return store;
}
