/** Binlog coordinates of a datadir whose server stopped cleanly (a cold seed's source). */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';

export interface DatadirBinlogPosition {
  file: string;
  position: number;
}

/**
 * The last file the datadir's binlog index lists, and that file's size: where a replica of the
 * copy starts. Null when the datadir has no binlog index (or none of its files exists).
 */
export async function readBinlogCoordinates(datadir: string): Promise<DatadirBinlogPosition | null> {
  const indexes = (await readdir(datadir)).filter((name) => name.endsWith('.index') && !name.includes('relay')).sort();
  for (const index of indexes) {
    const lines = (await readFile(join(datadir, index), 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean);
    const last = lines.at(-1);
    if (!last) continue;
    const path = isAbsolute(last) ? last : join(datadir, last);
    try {
      const st = await stat(path);
      return { file: basename(last), position: st.size };
    } catch {
      continue;
    }
  }
  return null;
}
