/** The agents table: every agent that ever completed a handshake. */
import type { Facts } from '../../shared/frames.js';
import { fromJsonColumn, toJsonColumn } from './json.js';
import type { SqlExecutor } from './sql.js';

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
  upsertOnHello(agent: Omit<AgentRow, 'facts' | 'lastSeenAt'>): Promise<void>;
  updateFacts(id: string, facts: Facts): Promise<void>;
  /**
   * Agents' last-seen times in a few statements (the hub batches a fleet's heartbeats instead of
   * writing one row per agent every few seconds).
   */
  touchMany(entries: ReadonlyArray<readonly [id: string, at: string]>): Promise<void>;
  get(id: string): Promise<AgentRow | null>;
  list(): Promise<AgentRow[]>;
  /** How many agents are known (ever completed a handshake). */
  count(): Promise<number>;
}

/** The most last-seen times one statement writes (a power of two; three parameters each). */
const TOUCH_CHUNK = 256;

export function createAgentStore(sql: SqlExecutor): AgentStore {
  return {
    async upsertOnHello(agent) {
      await sql.run(
        `INSERT INTO agents (id, hostname, datacenter, version, capabilities, connected_at, last_seen_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, datacenter = excluded.datacenter,
      version = excluded.version, capabilities = excluded.capabilities,
      connected_at = excluded.connected_at, last_seen_at = excluded.last_seen_at`,
        [agent.id, agent.hostname, agent.datacenter, agent.version, JSON.stringify(agent.capabilities), agent.connectedAt, agent.connectedAt],
      );
    },
    async updateFacts(id, facts) {
      await sql.run('UPDATE agents SET facts = ? WHERE id = ?', [toJsonColumn(facts), id]);
    },
    async touchMany(entries) {
      // Chunks of a power of two (at most TOUCH_CHUNK), so a handful of statement texts cover
      // every batch size: SQLite's statement cache stays small.
      for (let i = 0; i < entries.length; ) {
        let size = TOUCH_CHUNK;
        while (size > entries.length - i) size /= 2;
        const chunk = entries.slice(i, i + size);
        i += size;
        await sql.run(
          `UPDATE agents SET last_seen_at = CASE id ${chunk.map(() => 'WHEN ? THEN ?').join(' ')} END WHERE id IN (${chunk.map(() => '?').join(', ')})`,
          [...chunk.flat(), ...chunk.map(([id]) => id)],
        );
      }
    },
    async get(id) {
      const raw = await sql.get<RawAgent>('SELECT * FROM agents WHERE id = ?', [id]);
      return raw ? toAgentRow(raw) : null;
    },
    async list() {
      return (await sql.all<RawAgent>('SELECT * FROM agents ORDER BY id')).map(toAgentRow);
    },
    async count() {
      return Number((await sql.get<{ n: number }>('SELECT COUNT(*) AS n FROM agents'))?.n ?? 0);
    },
  };
}
