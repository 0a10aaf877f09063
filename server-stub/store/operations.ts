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
  };
}

export interface OperationEnd {
  state: Exclude<OperationState, 'running'>;
  endedAt: string;
  result: unknown;
  error: OperationError | null;
  exitCode: number | null;
}

export interface OperationStore {
  insert(op: Pick<Operation, 'id' | 'agentId' | 'op' | 'params' | 'createdAt' | 'actor'>): Operation;
  /** Sets the final state once; returns false if the operation had already ended. */
  finish(id: string, end: OperationEnd): boolean;
  get(id: string): Operation | null;
  list(filter: { agentId?: string; limit: number }): Operation[];
  listRunning(agentId?: string): Operation[];
}

export function createOperationStore(db: Database.Database): OperationStore {
  const insert = db.prepare(`INSERT INTO operations (id, agent_id, op, params, state, created_at, actor)
    VALUES (@id, @agentId, @op, @params, 'running', @createdAt, @actor)`);
  const finish = db.prepare(`UPDATE operations SET state = @state, ended_at = @endedAt, result = @result, error = @error,
    exit_code = @exitCode WHERE id = @id AND state = 'running'`);
  const selectOne = db.prepare('SELECT * FROM operations WHERE id = ?');
  const selectRecent = db.prepare('SELECT * FROM operations ORDER BY rowid DESC LIMIT ?');
  const selectRecentByAgent = db.prepare('SELECT * FROM operations WHERE agent_id = ? ORDER BY rowid DESC LIMIT ?');
  const selectRunning = db.prepare("SELECT * FROM operations WHERE state = 'running' ORDER BY rowid");
  const selectRunningByAgent = db.prepare("SELECT * FROM operations WHERE state = 'running' AND agent_id = ? ORDER BY rowid");
  const store: OperationStore = {
    insert(op) {
      insert.run({ ...op, params: JSON.stringify(op.params) });
      return store.get(op.id)!;
    },
    finish(id, end) {
      const info = finish.run({ id, ...end, result: toJsonColumn(end.result), error: toJsonColumn(end.error) });
      return info.changes === 1;
    },
    get(id) {
      const raw = selectOne.get(id) as RawOperation | undefined;
      return raw ? toOperation(raw) : null;
    },
    list({ agentId, limit }) {
      const rows = agentId === undefined ? selectRecent.all(limit) : selectRecentByAgent.all(agentId, limit);
      return (rows as RawOperation[]).map(toOperation);
    },
    listRunning(agentId) {
      const rows = agentId === undefined ? selectRunning.all() : selectRunningByAgent.all(agentId);
      return (rows as RawOperation[]).map(toOperation);
    },
  };
  return store;
}
