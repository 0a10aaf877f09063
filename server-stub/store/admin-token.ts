/**
 * The generated admin token: DATA_DIR/admin-token, mode 0600. Reused on later starts so a restart
 * keeps the console's login working.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function ensureAdminTokenFile(dataDir: string): { token: string; path: string; generated: boolean } {
  const path = join(dataDir, 'admin-token');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    const existing = readFileSync(path, 'utf8').trim();
    if (existing.length > 0) {
      chmodSync(path, 0o600);
      return { token: existing, path, generated: false };
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { token, path, generated: true };
}

/** Writes a token kept elsewhere (the cluster's, in PostgreSQL) to DATA_DIR/admin-token, mode 0600; returns the path. */
export function writeAdminTokenFile(dataDir: string, token: string): string {
  const path = join(dataDir, 'admin-token');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}
