/** `seedwire audit [--limit N]`. */
import type { ApiClient } from '../../client/api.js';
import { formatTime, renderTable } from '../format.js';
import { printJson, type Io } from '../io.js';

export async function listAudit(client: ApiClient, io: Io, limit: number, json: boolean): Promise<number> {
  const entries = await client.audit({ limit });
  if (json) {
    printJson(io, entries);
    return 0;
  }
  const rows = entries.map((e) => [formatTime(e.at), e.actor, e.agentId ?? '-', e.action, e.outcome, e.message ?? '']);
  io.stdout.write(rows.length === 0 ? 'the audit log is empty\n' : renderTable(['at', 'actor', 'agent', 'action', 'outcome', 'message'], rows));
  return 0;
}
