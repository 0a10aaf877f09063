/**
 * The benchmark's dataset: a directory tree shaped like a MySQL datadir — a few large files
 * (system tablespace, redo log, two big tables) and many small ones (per-table .ibd and .frm in
 * a score of schemas) — filled with 16 KiB pages that are mostly random bytes (InnoDB pages
 * compress poorly) and partly sparse pages (some random bytes, the rest zeros).
 *
 * Generated once into bench/.data/src and reused while its manifest matches the requested size.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, lstatSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, relative } from 'node:path';

const PAGE = 16 * 1024;
/** Share of pages that are mostly zeros (2 KiB random, 14 KiB zeros). */
const SPARSE_PAGE_SHARE = 0.15;
const MANIFEST_VERSION = 1;

export interface Dataset {
  dir: string;
  bytes: number;
  files: number;
  generated: boolean;
  generateSeconds: number;
}

interface Plan {
  path: string;
  size: number;
}

/** Deterministic layout for a total size: ~65 % in 4 large files, ~35 % in many small ones. */
function plan(total: number): Plan[] {
  const files: Plan[] = [];
  const pages = (bytes: number): number => Math.max(1, Math.floor(bytes / PAGE)) * PAGE;
  const large: Array<[string, number]> = [
    ['ibdata1', 0.15],
    ['ib_logfile0', 0.1],
    ['shop/order_items.ibd', 0.25],
    ['shop/events.ibd', 0.15],
  ];
  let used = 0;
  for (const [path, share] of large) {
    const size = pages(total * share);
    files.push({ path, size });
    used += size;
  }
  // Small tables: sizes cycle through a fixed list, each with a tiny .frm next to it.
  const sizes = [64, 96, 128, 160, 256, 384, 512, 1024].map((k) => k * 1024);
  const frm = 2 * 1024 + 512;
  let i = 0;
  while (used < total) {
    const schema = `db${String(i % 20).padStart(2, '0')}`;
    const table = `t${String(Math.floor(i / 20)).padStart(4, '0')}`;
    const size = Math.min(sizes[i % sizes.length]!, Math.max(PAGE, total - used - frm));
    files.push({ path: `${schema}/${table}.ibd`, size: pages(size) });
    files.push({ path: `${schema}/${table}.frm`, size: frm });
    used += pages(size) + frm;
    i += 1;
  }
  files.push({ path: 'mysql/db.opt', size: 65 });
  files.push({ path: 'aria_log_control', size: 52 });
  return files;
}

function fill(buf: Buffer, seedIndex: number): void {
  randomFillSync(buf);
  // Make a deterministic share of pages sparse so zstd has something to find.
  for (let p = 0; p + PAGE <= buf.length; p += PAGE) {
    if (((p / PAGE + seedIndex) * 2654435761) % 1000 < SPARSE_PAGE_SHARE * 1000) buf.fill(0, p + 2048, p + PAGE);
  }
}

function writeFileOfSize(path: string, size: number, scratch: Buffer, index: number): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    let done = 0;
    while (done < size) {
      const n = Math.min(scratch.length, size - done);
      const slice = scratch.subarray(0, n);
      fill(slice, index + done / PAGE);
      let off = 0;
      while (off < n) off += writeSync(fd, slice, off, n - off);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

export function ensureDataset(root: string, totalBytes: number, log: (line: string) => void): Dataset {
  const dir = join(root, 'src');
  const manifestPath = join(root, 'manifest.json');
  if (existsSync(manifestPath) && existsSync(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version: number; requested: number; bytes: number; files: number };
      if (manifest.version === MANIFEST_VERSION && manifest.requested === totalBytes) {
        const stats = treeStats(dir);
        if (stats.bytes === manifest.bytes && stats.files.size === manifest.files) {
          return { dir, bytes: manifest.bytes, files: manifest.files, generated: false, generateSeconds: 0 };
        }
        log(`dataset in ${dir} does not match its manifest; regenerating`);
      }
    } catch {
      // regenerate
    }
  }
  log(`generating a ${(totalBytes / 2 ** 20).toFixed(0)} MiB dataset into ${dir} (once; reused by later runs)`);
  const started = performance.now();
  rmSync(root, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const scratch = Buffer.allocUnsafe(4 * 1024 * 1024);
  let bytes = 0;
  const layout = plan(totalBytes);
  layout.forEach((file, index) => {
    const abs = join(dir, file.path);
    mkdirSync(join(abs, '..'), { recursive: true });
    writeFileOfSize(abs, file.size, scratch, index * 7919);
    bytes += file.size;
  });
  writeFileSync(manifestPath, JSON.stringify({ version: MANIFEST_VERSION, requested: totalBytes, bytes, files: layout.length, generatedAt: new Date().toISOString() }, null, 2));
  return { dir, bytes, files: layout.length, generated: true, generateSeconds: (performance.now() - started) / 1000 };
}

/** Regular files of a tree (relative path → size) and their total; ignores names in `skip`. */
export function treeStats(dir: string, skip: ReadonlySet<string> = new Set()): { files: Map<string, number>; bytes: number } {
  const files = new Map<string, number>();
  let bytes = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      if (skip.has(name)) continue;
      const abs = join(d, name);
      const st = lstatSync(abs);
      if (st.isDirectory()) walk(abs);
      else if (st.isFile()) {
        files.set(relative(dir, abs), st.size);
        bytes += st.size;
      }
    }
  };
  walk(dir);
  return { files, bytes };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    for await (const chunk of fh.createReadStream()) hash.update(chunk as Buffer);
  } finally {
    await fh.close().catch(() => undefined);
  }
  return hash.digest('hex');
}

/**
 * Compares a copy with the original: same file set, same sizes, and the same SHA-256 for a
 * sample (the largest file and a few small ones). Returns null when equal, else what differs.
 */
export async function compareTrees(source: string, target: string, skip: ReadonlySet<string>): Promise<{ problem: string | null; files: number; bytes: number }> {
  const a = treeStats(source, skip);
  const b = treeStats(target, skip);
  const problems: string[] = [];
  if (a.files.size !== b.files.size) problems.push(`file count ${b.files.size} ≠ source ${a.files.size}`);
  if (a.bytes !== b.bytes) problems.push(`bytes ${b.bytes} ≠ source ${a.bytes}`);
  let mismatched = 0;
  for (const [path, size] of a.files) {
    if (b.files.get(path) !== size) {
      if (mismatched < 3) problems.push(`${path}: ${b.files.get(path) ?? 'missing'} ≠ ${size} bytes`);
      mismatched += 1;
    }
  }
  if (problems.length === 0) {
    const sorted = [...a.files.entries()].sort((x, y) => y[1] - x[1]);
    const sample = [sorted[0], sorted[Math.floor(sorted.length / 2)], sorted.at(-1)].filter((e): e is [string, number] => e !== undefined);
    for (const [path] of sample) {
      const [ha, hb] = await Promise.all([sha256File(join(source, path)), sha256File(join(target, path))]);
      if (ha !== hb) problems.push(`${path}: SHA-256 differs`);
    }
  }
  return { problem: problems.length > 0 ? problems.join('; ') : null, files: b.files.size, bytes: b.bytes };
}
