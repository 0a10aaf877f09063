/**
 * The receiver's resume point, kept in the agent's stateDir:
 *
 * - `seed-receive.json`: seed id, committed stream offset, the file being written (header and
 *   bytes written) when the offset is inside its data, how many ledger lines count, and once the
 *   end record has been verified, the stream's summary (what seed-finalize-target checks).
 *   Replaced atomically (write, fdatasync, rename).
 * - `seed-receive.ledger`: one JSON line {path, size, sha256} per verified file, in stream order,
 *   so a resumed receive can still compute the whole-stream digest. Lines beyond
 *   `ledgerEntries` (appended after the last state write) are discarded on resume.
 *
 * One target receives one seed at a time, so the names are fixed and the seed id inside decides
 * whether a state belongs to a seed.
 */
import { mkdir, open, readFile, rename, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { DigestEntry, TreeSummary } from './format.js';

export const RECEIVE_STATE_FILE = 'seed-receive.json';
export const RECEIVE_LEDGER_FILE = 'seed-receive.ledger';

const SummarySchema = z.object({ files: z.number().int().nonnegative(), bytes: z.number().int().nonnegative(), digest: z.string() });
const ReceiveStateSchema = z.object({
  version: z.literal(1),
  seedId: z.string(),
  committed: z.number().int().nonnegative(),
  current: z
    .object({
      path: z.string(),
      mode: z.number().int(),
      mtimeMs: z.number().int(),
      size: z.number().int().nonnegative(),
      dataStart: z.number().int().nonnegative(),
      position: z.number().int().nonnegative(),
    })
    .nullable(),
  ledgerEntries: z.number().int().nonnegative(),
  done: SummarySchema.nullable(),
  updatedAt: z.string(),
});
export type ReceiveState = z.infer<typeof ReceiveStateSchema>;

export function receiveStatePaths(stateDir: string): { state: string; ledger: string } {
  return { state: join(stateDir, RECEIVE_STATE_FILE), ledger: join(stateDir, RECEIVE_LEDGER_FILE) };
}

/** The stored state when it belongs to `seedId` and parses; null otherwise. */
export async function readReceiveState(stateDir: string, seedId: string): Promise<ReceiveState | null> {
  let text: string;
  try {
    text = await readFile(receiveStatePaths(stateDir).state, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = ReceiveStateSchema.safeParse(raw);
  if (!parsed.success || parsed.data.seedId !== seedId) return null;
  return parsed.data;
}

export async function writeReceiveState(stateDir: string, state: ReceiveState): Promise<void> {
  const { state: path } = receiveStatePaths(stateDir);
  await mkdir(stateDir, { recursive: true });
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(state));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

export async function dropReceiveState(stateDir: string): Promise<void> {
  const paths = receiveStatePaths(stateDir);
  await rm(paths.state, { force: true });
  await rm(`${paths.state}.tmp`, { force: true });
  await rm(paths.ledger, { force: true });
}

/** Reads the first `count` ledger entries and cuts the file after them; null if it has fewer. */
export async function loadLedger(stateDir: string, count: number): Promise<DigestEntry[] | null> {
  const { ledger } = receiveStatePaths(stateDir);
  let text: string;
  try {
    text = await readFile(ledger, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return count === 0 ? [] : null;
    throw error;
  }
  const entries: DigestEntry[] = [];
  let bytes = 0;
  let start = 0;
  while (entries.length < count) {
    const end = text.indexOf('\n', start);
    if (end < 0) return null;
    const line = text.slice(start, end);
    try {
      entries.push(JSON.parse(line) as DigestEntry);
    } catch {
      return null;
    }
    bytes += Buffer.byteLength(line) + 1;
    start = end + 1;
  }
  await truncate(ledger, bytes);
  return entries;
}

export function ledgerLine(entry: DigestEntry): string {
  return `${JSON.stringify({ path: entry.path, size: entry.size, sha256: entry.sha256 })}\n`;
}

export type { TreeSummary };
