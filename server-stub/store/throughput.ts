/** The seed_throughput table: one JSON series per seed (server-stub/seed/throughput-recorder.ts fills it). */
import type { SqlExecutor } from './sql.js';

export interface ThroughputStore {
  /** The stored series' JSON text, or null when the seed has none. */
  load(seedId: string): Promise<string | null>;
  save(seedId: string, series: string): Promise<void>;
}

export function createThroughputStore(sql: SqlExecutor): ThroughputStore {
  return {
    async load(seedId) {
      return (await sql.get<{ series: string }>('SELECT series FROM seed_throughput WHERE seed_id = ?', [seedId]))?.series ?? null;
    },
    async save(seedId, series) {
      await sql.run('INSERT INTO seed_throughput (seed_id, series) VALUES (?, ?) ON CONFLICT (seed_id) DO UPDATE SET series = excluded.series', [seedId, series]);
    },
  };
}
