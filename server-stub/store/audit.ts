/** The audit table: who did what to which agent, and how it ended. */
import type Database from 'better-sqlite3';
import type { AuditEntry } from '../types.js';
import { fromJsonColumn, toJsonColumn } from './json.js';

interface RawAudit {
  at: string;
  actor: string;
  agent_id: string | null;
  action: string;
  params: string | null;
  outcome: string;
  message: string | null;
}

export interface AuditStore {
  insert(entry: AuditEntry): void;
  list(limit: number): AuditEntry[];
}

export function createAuditStore(db: Database.Database): AuditStore {
  const insert = db.prepare(
    'INSERT INTO audit (at, actor, agent_id, action, params, outcome, message) VALUES (@at, @actor, @agentId, @action, @params, @outcome, @message)',
  );
  const select = db.prepare('SELECT at, actor, agent_id, action, params, outcome, message FROM audit ORDER BY id DESC LIMIT ?');
  return {
    insert(entry) {
      insert.run({ ...entry, params: toJsonColumn(entry.params) });
    },
    list(limit) {
      return (select.all(limit) as RawAudit[]).map((raw) => ({
        at: raw.at,
        actor: raw.actor,
        agentId: raw.agent_id,
        action: raw.action,
        params: fromJsonColumn<unknown>(raw.params, null),
        outcome: raw.outcome,
        message: raw.message,
      }));
    },
  };
}
