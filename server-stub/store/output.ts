/**
 * Output of operations. The first `capBytes` of an operation's output are stored in full; past the
 * cap one truncation marker row is written and only the counters and the rolling tail (the last
 * `tailBytes`, kept in operations.output_tail) move on, so the tail is always the latest output.
 */
import { LIMITS } from '../../shared/limits.js';
import type { SqlExecutor } from './sql.js';

export type OutputStream = 'stdout' | 'stderr';

export interface OutputChunk {
  seq: number;
  stream: OutputStream | 'marker';
  data: string;
}

export interface OutputStore {
  /**
   * Appends one chunk; returns the row seq it was stored under (null when past the cap) and
   * `bytes`, the operation's output bytes with it (0 for an unknown operation). `frameSeq`: the
   * agent's seq of the frame it came in; a frame at or below the last one stored is not stored
   * again (`duplicate`; an agent sends unacknowledged output again after a reconnect).
   */
  append(operationId: string, stream: OutputStream, data: string, frameSeq?: number): Promise<{ seq: number | null; bytes: number; duplicate?: true }>;
  /**
   * The agent's seq of the last output frame stored for the operation: -1 when none was, null when
   * unknown (output stored by a release that did not record it, or no such operation).
   */
  lastFrameSeq(operationId: string): Promise<number | null>;
  /** The whole stored output as text: head, a truncation note, then the tail. */
  readText(operationId: string): Promise<string>;
  /** readText with the output bytes it covers (a live follower skips chunks it already holds). */
  readStored(operationId: string): Promise<{ text: string; bytes: number }>;
  readChunks(operationId: string): Promise<OutputChunk[]>;
}

interface Counters {
  output_seq: number;
  output_bytes: number;
  output_stored: number;
  output_rows: number;
  output_truncated: number;
  output_tail: string;
}

/** The last `maxBytes` bytes of `text` (UTF-8), never splitting a character at the start. */
export function takeTailBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let start = buf.length - maxBytes;
  while (start < buf.length && ((buf[start] ?? 0) & 0xc0) === 0x80) start++;
  return buf.subarray(start).toString('utf8');
}

/** The first `maxBytes` bytes of `text`, never splitting a character at the end. */
export function takeHeadBytes(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}

export function formatTruncation(omittedBytes: number): string {
  return `\n[seedwire: output truncated, ${omittedBytes} bytes omitted]\n`;
}

export function createOutputStore(
  sql: SqlExecutor,
  limits: { capBytes: number; tailBytes: number } = { capBytes: LIMITS.outputStoreBytes, tailBytes: LIMITS.outputTailBytes },
): OutputStore {
  const selectCounters = 'SELECT output_seq, output_bytes, output_stored, output_rows, output_truncated, output_tail FROM operations WHERE id = ?';
  // Appends are read-modify-write of the counters: on PostgreSQL the row is locked for it.
  const selectCountersForUpdate = sql.dialect === 'postgres' ? `${selectCounters} FOR UPDATE` : selectCounters;
  const selectRows = 'SELECT seq, stream, data FROM operation_output WHERE operation_id = ? ORDER BY seq';

  const store: OutputStore = {
    append(operationId, stream, data, frameSeq) {
      return sql.transaction(async (tx) => {
        const c = await tx.get<Counters>(selectCountersForUpdate, [operationId]);
        if (!c) return { seq: null, bytes: 0 };
        if (frameSeq !== undefined && frameSeq <= c.output_seq) return { seq: null, bytes: c.output_bytes, duplicate: true };
        const insertRow = (seq: number, kind: OutputChunk['stream'], text: string): Promise<unknown> =>
          tx.run('INSERT INTO operation_output (operation_id, seq, stream, data) VALUES (?, ?, ?, ?)', [operationId, seq, kind, text]);
        const bytes = Buffer.byteLength(data);
        let stored = c.output_stored;
        let rows = c.output_rows;
        let truncated = c.output_truncated;
        let seq: number | null = null;
        if (!truncated) {
          const room = limits.capBytes - stored;
          const head = bytes <= room ? data : takeHeadBytes(data, room);
          if (head.length > 0) {
            seq = rows;
            await insertRow(rows++, stream, head);
            stored += Buffer.byteLength(head);
          }
          if (head.length < data.length) {
            await insertRow(rows++, 'marker', '');
            truncated = 1;
          }
        }
        const tail = takeTailBytes(c.output_tail + data, limits.tailBytes);
        await tx.run('UPDATE operations SET output_seq = ?, output_bytes = ?, output_stored = ?, output_rows = ?, output_truncated = ?, output_tail = ? WHERE id = ?', [
          frameSeq ?? c.output_seq,
          c.output_bytes + bytes,
          stored,
          rows,
          truncated,
          tail,
          operationId,
        ]);
        return { seq, bytes: c.output_bytes + bytes };
      });
    },
    async lastFrameSeq(operationId) {
      const row = await sql.get<{ output_seq: number; output_bytes: number }>('SELECT output_seq, output_bytes FROM operations WHERE id = ?', [operationId]);
      if (!row) return null;
      return row.output_seq < 0 && row.output_bytes > 0 ? null : row.output_seq;
    },
    readChunks(operationId) {
      return sql.all<OutputChunk>(selectRows, [operationId]);
    },
    async readText(operationId) {
      return (await store.readStored(operationId)).text;
    },
    async readStored(operationId) {
      // One snapshot of the counters and the rows.
      return sql.transaction(async (tx) => readStored(tx, operationId));
    },
  };
  return store;

  async function readStored(tx: SqlExecutor, operationId: string): Promise<{ text: string; bytes: number }> {
    const c = await tx.get<Counters>(selectCounters, [operationId]);
    if (!c) return { text: '', bytes: 0 };
    const parts: string[] = [];
    for (const row of await tx.all<OutputChunk>(selectRows, [operationId])) {
      if (row.stream !== 'marker') {
        parts.push(row.data);
        continue;
      }
      const after = c.output_bytes - c.output_stored;
      const tail = takeTailBytes(c.output_tail, after);
      const omitted = after - Buffer.byteLength(tail);
      parts.push(formatTruncation(omitted), tail);
    }
    return { text: parts.join(''), bytes: c.output_bytes };
  }
}
