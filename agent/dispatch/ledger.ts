/**
 * The idempotency ledger: which call ids this agent has started and what they ended with, kept in
 * `stateDir/ledger.jsonl` so a call id is never run twice, not even across agent restarts.
 * A call that was running when the previous process died ends as SEEDWIRE_LOST (its outcome is
 * unknown; running it again could repeat a side effect). Bounded to `maxEntries`: acknowledged
 * results are forgotten first, then the oldest undelivered ones; running calls are never dropped.
 *
 * The file is an append-only journal (one short line per change, so a call costs two small
 * appends, not a rewrite of the whole ledger); it is compacted by an atomic rewrite when it grows
 * past a few times the bound, and on open. A torn last line (a crash mid-append) is skipped.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorFrame, ResultFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { AGENT_LIMITS } from '../limits.js';

const EntrySchema = z.object({
  id: z.string(),
  op: z.string(),
  state: z.enum(['running', 'done']),
  acked: z.boolean(),
  frame: z.union([ResultFrame, ErrorFrame]).optional(),
});
const LineSchema = z.discriminatedUnion('k', [
  EntrySchema.extend({ k: z.literal('entry') }),
  z.object({ k: z.literal('ack'), ids: z.array(z.string()) }),
]);

export type Outcome = z.infer<typeof ResultFrame> | z.infer<typeof ErrorFrame>;
export type LedgerEntry = z.infer<typeof EntrySchema>;

export const LEDGER_FILE = 'ledger.jsonl';

export class Ledger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly file: string;
  private lines = 0;
  private fd: number | null = null;

  private constructor(
    dir: string,
    private readonly maxEntries: number,
  ) {
    this.file = join(dir, LEDGER_FILE);
  }

  /** Loads the ledger (unreadable lines are skipped; `onCorrupt` hears about them). */
  static open(dir: string, options: { maxEntries?: number; onCorrupt?: (error: unknown) => void } = {}): Ledger {
    mkdirSync(dir, { recursive: true });
    const ledger = new Ledger(dir, options.maxEntries ?? LIMITS.ledgerEntries);
    let text = '';
    try {
      text = readFileSync(ledger.file, 'utf8');
    } catch {
      text = '';
    }
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        ledger.apply(LineSchema.parse(JSON.parse(line)));
      } catch (error) {
        options.onCorrupt?.(error);
      }
    }
    for (const [id, entry] of ledger.entries) ledger.entries.set(id, markLostIfRunning(entry));
    ledger.evict();
    ledger.compact();
    return ledger;
  }

  get(id: string): LedgerEntry | undefined {
    return this.entries.get(id);
  }

  markRunning(id: string, op: string): void {
    const entry: LedgerEntry = { id, op, state: 'running', acked: false };
    this.entries.set(id, entry);
    this.evict();
    this.append({ k: 'entry', ...entry });
  }

  complete(id: string, frame: Outcome): void {
    const op = this.entries.get(id)?.op ?? '?';
    this.entries.delete(id); // re-insert: age counts from the end
    const entry: LedgerEntry = { id, op, state: 'done', acked: false, frame };
    this.entries.set(id, entry);
    this.evict();
    this.append({ k: 'entry', ...entry });
  }

  /** The controller has stored these results; they are no longer re-sent (the ids stay known). */
  ack(ids: readonly string[]): void {
    const changed: string[] = [];
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry?.state === 'done' && !entry.acked) {
        entry.acked = true;
        changed.push(id);
      }
    }
    if (changed.length > 0) this.append({ k: 'ack', ids: changed });
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

  /** Closes the journal's descriptor (the next append opens it again). */
  close(): void {
    this.closeFile();
  }

  private closeFile(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
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

  private apply(line: z.infer<typeof LineSchema>): void {
    if (line.k === 'ack') {
      for (const id of line.ids) {
        const entry = this.entries.get(id);
        if (entry) entry.acked = true;
      }
      return;
    }
    const { k: _k, ...entry } = line;
    this.entries.delete(entry.id); // re-insert: age counts from the end
    this.entries.set(entry.id, entry);
  }

  private append(line: z.infer<typeof LineSchema>): void {
    // One descriptor kept open for appends: an open and a close per line were two thirds of the
    // ledger's system calls on every call's path (docs/scale-out.md, "Where an operation's time goes").
    this.fd ??= openSync(this.file, 'a', 0o600);
    writeSync(this.fd, `${JSON.stringify(line)}\n`);
    this.lines += 1;
    if (this.lines > Math.max(64, this.maxEntries * AGENT_LIMITS.ledgerCompactRatio)) this.compact();
  }

  /** Atomic replace with one line per entry kept: a crash mid-write leaves the previous journal. */
  private compact(): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    const text = [...this.entries.values()].map((entry) => `${JSON.stringify({ k: 'entry', ...entry })}\n`).join('');
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.closeFile(); // appends go to the new file
    this.lines = this.entries.size;
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
