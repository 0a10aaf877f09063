/** The agents table: every agent that ever completed a handshake. */
import type Database from 'better-sqlite3';
import type { Facts } from '../../shared/frames.js';
import { fromJsonColumn, toJsonColumn } from './json.js';

export interface AgentRow {
  id: string;
  hostname: string;
  datacenter: string | null;
  version: string;
  capabilities: string[];
  connectedAt: string | null;
  lastSeenAt: string | null;
  facts: Facts | null;
}

interface RawAgent {
  id: string;
  hostname: string;
  datacenter: string | null;
  version: string;
  capabilities: string;
  connected_at: string | null;
  last_seen_at: string | null;
  facts: string | null;
}

function toAgentRow(raw: RawAgent): AgentRow {
  return {
    id: raw.id,
    hostname: raw.hostname,
    datacenter: raw.datacenter,
    version: raw.version,
    capabilities: fromJsonColumn<string[]>(raw.capabilities, []),
    connectedAt: raw.connected_at,
    lastSeenAt: raw.last_seen_at,
    facts: fromJsonColumn<Facts | null>(raw.facts, null),
  };
}

export interface AgentStore {
  upsertOnHello(agent: Omit<AgentRow, 'facts' | 'lastSeenAt'>): void;
  updateFacts(id: string, facts: Facts): void;
  touch(id: string, at: string): void;
  get(id: string): AgentRow | null;
  list(): AgentRow[];
  /** How many agents are known (ever completed a handshake). */
  count(): number;
}

export function createAgentStore(db: Database.Database): AgentStore {
  const upsert = db.prepare(`
    INSERT INTO agents (id, hostname, datacenter, version, capabilities, connected_at, last_seen_at)
    VALUES (@id, @hostname, @datacenter, @version, @capabilities, @connectedAt, @connectedAt)
    ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, datacenter = excluded.datacenter,
      version = excluded.version, capabilities = excluded.capabilities,
      connected_at = excluded.connected_at, last_seen_at = excluded.last_seen_at`);
  const setFacts = db.prepare('UPDATE agents SET facts = ? WHERE id = ?');
  const setSeen = db.prepare('UPDATE agents SET last_seen_at = ? WHERE id = ?');
  const selectOne = db.prepare('SELECT * FROM agents WHERE id = ?');
  const selectAll = db.prepare('SELECT * FROM agents ORDER BY id');
  const selectCount = db.prepare('SELECT COUNT(*) AS n FROM agents');
  return {
    upsertOnHello(agent) {
      upsert.run({ ...agent, capabilities: JSON.stringify(agent.capabilities) });
    },
    updateFacts(id, facts) {
      setFacts.run(toJsonColumn(facts), id);
    },
    touch(id, at) {
      setSeen.run(at, id);
    },
    get(id) {
      const raw = selectOne.get(id) as RawAgent | undefined;
      return raw ? toAgentRow(raw) : null;
    },
    list() {
      return (selectAll.all() as RawAgent[]).map(toAgentRow);
    },
    count() {
      return (selectCount.get() as { n: number }).n;
    },
  };
}
