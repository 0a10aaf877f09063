/**
 * The idempotency ledger: which call ids this agent has started and what they ended with, kept in
 * `stateDir/ledger.json` so a call id is never run twice, not even across agent restarts.
 * A call that was running when the previous process died ends as SEEDWIRE_LOST (its outcome is
 * unknown; running it again could repeat a side effect). Bounded to `maxEntries`: acknowledged
 * results are forgotten first, then the oldest undelivered ones; running calls are never dropped.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorFrame, ResultFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';

const EntrySchema = z.object({
  id: z.string(),
  op: z.string(),
  state: z.enum(['running', 'done']),
  acked: z.boolean(),
  frame: z.union([ResultFrame, ErrorFrame]).optional(),
});
const FileSchema = z.object({ v: z.literal(1), entries: z.array(EntrySchema) });

export type Outcome = z.infer<typeof ResultFrame> | z.infer<typeof ErrorFrame>;
export type LedgerEntry = z.infer<typeof EntrySchema>;

export const LEDGER_FILE = 'ledger.json';

export class Ledger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly file: string;

  private constructor(
    dir: string,
    private readonly maxEntries: number,
  ) {
    this.file = join(dir, LEDGER_FILE);
  }

  /** Loads the ledger (a missing or unreadable file starts empty; `onCorrupt` hears about it). */
  static open(dir: string, options: { maxEntries?: number; onCorrupt?: (error: unknown) => void } = {}): Ledger {
    mkdirSync(dir, { recursive: true });
    const ledger = new Ledger(dir, options.maxEntries ?? LIMITS.ledgerEntries);
    let text: string | undefined;
    try {
      text = readFileSync(ledger.file, 'utf8');
    } catch {
      text = undefined;
    }
    if (text !== undefined) {
      try {
        const parsed = FileSchema.parse(JSON.parse(text));
        for (const entry of parsed.entries) ledger.entries.set(entry.id, markLostIfRunning(entry));
      } catch (error) {
        options.onCorrupt?.(error);
      }
    }
    ledger.persist();
    return ledger;
  }

  get(id: string): LedgerEntry | undefined {
    return this.entries.get(id);
  }

  markRunning(id: string, op: string): void {
    this.entries.set(id, { id, op, state: 'running', acked: false });
    this.evict();
    this.persist();
  }

  complete(id: string, frame: Outcome): void {
    const entry = this.entries.get(id);
    const op = entry?.op ?? '?';
    this.entries.delete(id); // re-insert: age counts from the end
    this.entries.set(id, { id, op, state: 'done', acked: false, frame });
    this.evict();
    this.persist();
  }

  /** The controller has stored these results; they are no longer re-sent (the ids stay known). */
  ack(ids: readonly string[]): void {
    let changed = false;
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry?.state === 'done' && !entry.acked) {
        entry.acked = true;
        changed = true;
      }
    }
    if (changed) this.persist();
  }

  /** Finished results the controller has not acknowledged, oldest first. */
  pendingOutcomes(): Outcome[] {
    const out: Outcome[] = [];
    for (const entry of this.entries.values()) if (entry.state === 'done' && !entry.acked && entry.frame) out.push(entry.frame);
    return out;
  }

  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    if (this.entries.size <= this.maxEntries) return;
    for (const pass of [true, false]) {
      for (const entry of this.entries.values()) {
        if (this.entries.size <= this.maxEntries) return;
        if (entry.state === 'done' && entry.acked === pass) this.entries.delete(entry.id);
      }
    }
  }

  /** Atomic replace: a crash mid-write leaves the previous ledger, never half a file. */
  private persist(): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ v: 1, entries: [...this.entries.values()] }), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}

function markLostIfRunning(entry: LedgerEntry): LedgerEntry {
  if (entry.state !== 'running') return entry;
  return {
    ...entry,
    state: 'done',
    acked: false,
    frame: { t: 'error', id: entry.id, code: 'SEEDWIRE_LOST', message: `the agent restarted while '${entry.op}' was running; its outcome is unknown` },
  };
}
