/** The audit table: who did what to which agent, and how it ended. */
import type { AuditEntry } from '../types.js';
import { fromJsonColumn, toJsonColumn } from './json.js';
import { prepared, type SqlExecutor } from './sql.js';

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
  insert(entry: AuditEntry): Promise<void>;
  /** Newest first. */
  list(limit: number): Promise<AuditEntry[]>;
}

/** The audit row's insert, shared with statements that write it beside another row (operations.ts). */
export const INSERT_AUDIT = prepared('INSERT INTO audit (at, actor, agent_id, action, params, outcome, message) VALUES (?, ?, ?, ?, ?, ?, ?)');

/** INSERT_AUDIT's parameters, in its order. */
export function auditValues(entry: AuditEntry): unknown[] {
  return [entry.at, entry.actor, entry.agentId, entry.action, toJsonColumn(entry.params), entry.outcome, entry.message];
}

export function createAuditStore(sql: SqlExecutor): AuditStore {
  return {
    async insert(entry) {
      await sql.run(INSERT_AUDIT, auditValues(entry));
    },
    async list(limit) {
      const rows = await sql.all<RawAudit>('SELECT at, actor, agent_id, action, params, outcome, message FROM audit ORDER BY id DESC LIMIT ?', [limit]);
      return rows.map((raw) => ({
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
