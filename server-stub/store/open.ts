/** Opens the store a controller is configured with: SQLite in its data dir, or PostgreSQL by URL. */
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './types.js';
import { redactUrl } from './url.js';

export { redactUrl } from './url.js';

export interface StoreOptions {
  dataDir: string;
  /** A postgres:// (or postgresql://) URL; null for SQLite in `dataDir`. */
  url: string | null;
  log?: Pick<Logger, 'info' | 'warn'>;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.url === null) return openSqliteStore(options.dataDir, options.log);
  if (!/^postgres(ql)?:\/\//.test(options.url)) throw new SeedwireError('SEEDWIRE_CONFIG', `store: expected a postgres:// URL, got '${redactUrl(options.url)}'`);
  return openPostgresStore(options.url, options.log ? { log: options.log } : {});
}
