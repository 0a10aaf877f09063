/**
 * Output of operations. The first `capBytes` of an operation's output are stored in full; past the
 * cap one truncation marker row is written and only the counters and the rolling tail (the last
 * `tailBytes`, kept in operations.output_tail) move on, so the tail is always the latest output.
 */
import type Database from 'better-sqlite3';
import { LIMITS } from '../../shared/limits.js';

export type OutputStream = 'stdout' | 'stderr';

export interface OutputChunk {
  seq: number;
  stream: OutputStream | 'marker';
  data: string;
}

export interface OutputStore {
  /** Appends one chunk; returns the row seq it was stored under (null when past the cap). */
  append(operationId: string, stream: OutputStream, data: string): { seq: number | null };
  /** The whole stored output as text: head, a truncation note, then the tail. */
  readText(operationId: string): string;
  readChunks(operationId: string): OutputChunk[];
}

interface Counters {
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
  db: Database.Database,
  limits: { capBytes: number; tailBytes: number } = { capBytes: LIMITS.outputStoreBytes, tailBytes: LIMITS.outputTailBytes },
): OutputStore {
  const selectCounters = db.prepare('SELECT output_bytes, output_stored, output_rows, output_truncated, output_tail FROM operations WHERE id = ?');
  const updateCounters = db.prepare(`UPDATE operations SET output_bytes = @bytes, output_stored = @stored, output_rows = @rows,
    output_truncated = @truncated, output_tail = @tail WHERE id = @id`);
  const insertRow = db.prepare('INSERT INTO operation_output (operation_id, seq, stream, data) VALUES (?, ?, ?, ?)');
  const selectRows = db.prepare('SELECT seq, stream, data FROM operation_output WHERE operation_id = ? ORDER BY seq');

  const append = db.transaction((operationId: string, stream: OutputStream, data: string): { seq: number | null } => {
    const c = selectCounters.get(operationId) as Counters | undefined;
    if (!c) return { seq: null };
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
        insertRow.run(operationId, rows++, stream, head);
        stored += Buffer.byteLength(head);
      }
      if (head.length < data.length) {
        insertRow.run(operationId, rows++, 'marker', '');
        truncated = 1;
      }
    }
    const tail = takeTailBytes(c.output_tail + data, limits.tailBytes);
    updateCounters.run({ id: operationId, bytes: c.output_bytes + bytes, stored, rows, truncated, tail });
    return { seq };
  });

  return {
    append(operationId, stream, data) {
      return append(operationId, stream, data);
    },
    readChunks(operationId) {
      return selectRows.all(operationId) as OutputChunk[];
    },
    readText(operationId) {
      const c = selectCounters.get(operationId) as Counters | undefined;
      if (!c) return '';
      const parts: string[] = [];
      for (const row of selectRows.all(operationId) as OutputChunk[]) {
        if (row.stream !== 'marker') {
          parts.push(row.data);
          continue;
        }
        const after = c.output_bytes - c.output_stored;
        const tail = takeTailBytes(c.output_tail, after);
        const omitted = after - Buffer.byteLength(tail);
        parts.push(formatTruncation(omitted), tail);
      }
      return parts.join('');
    },
  };
}
