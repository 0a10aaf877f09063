/** The last lines of the MySQL error log, read backwards from the end in bounded chunks. */
import { open } from 'node:fs/promises';
import { AGENT_LIMITS } from '../limits.js';

/** The last `count` lines of `text` (a trailing newline does not make an empty last line). */
export function takeLastLines(text: string, count: number): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(-count).map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

function countNewlines(buffer: Buffer): number {
  let n = 0;
  for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) n++;
  return n;
}

export async function readLogTail(path: string, count: number, maxBytes: number = AGENT_LIMITS.errorLogTailMaxBytes): Promise<string[]> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const chunks: Buffer[] = [];
    let position = size;
    let newlines = 0;
    // count+1 newlines guarantee `count` whole lines (the last line may end with one)
    while (position > 0 && newlines <= count && size - position < maxBytes) {
      const length = Math.min(AGENT_LIMITS.errorLogChunkBytes, position, maxBytes - (size - position));
      position -= length;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      const chunk = buffer.subarray(0, bytesRead);
      chunks.unshift(chunk);
      newlines += countNewlines(chunk);
    }
    let text = Buffer.concat(chunks).toString('utf8');
    // started mid-line (bounded read): drop the partial first line
    if (position > 0 && newlines > 0) text = text.slice(text.indexOf('\n') + 1);
    return takeLastLines(text, count);
  } finally {
    await handle.close();
  }
}
