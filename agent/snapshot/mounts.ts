/** Mount state from /proc/self/mounts, the kernel's truth (not what this process remembers). */
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

/** /proc/self/mounts escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export function parseMounts(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [source, target, fstype, options] = line.split(' ');
    if (!source || !target || !fstype) continue;
    entries.push({ source: unescapeMountField(source), target: unescapeMountField(target), fstype, options: (options ?? '').split(',') });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMounts(await readFile('/proc/self/mounts', 'utf8'));
}

/** The top-most mount at `target` (the last one listed wins when mounts are stacked). */
export function findMountAt(entries: readonly MountEntry[], target: string): MountEntry | null {
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as MountEntry;
    if (entry.target === target) return entry;
  }
  return null;
}
