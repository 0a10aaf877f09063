/** The Audit service: persist a row, then publish it on the bus. */
import type { EventBus } from '../events/types.js';
import type { AuditStore } from '../store/audit.js';
import type { Audit, AuditEntry } from '../types.js';

export function createAudit(store: AuditStore, bus: EventBus): Audit {
  return {
    async record(entry, through = store) {
      const row: AuditEntry = {
        at: new Date().toISOString(),
        actor: entry.actor,
        agentId: entry.agentId ?? null,
        action: entry.action,
        params: entry.params ?? null,
        outcome: entry.outcome,
        message: entry.message ?? null,
      };
      await through.insert(row);
      bus.publish('audit', row);
      return row;
    },
    publish(row) {
      bus.publish('audit', row);
    },
    list(limit) {
      return store.list(limit);
    },
  };
}
