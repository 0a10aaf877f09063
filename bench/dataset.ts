/**
 * The benchmark's dataset (docs/performance.md): a real MariaDB datadir (mariadb-install-db, a
 * started mariadbd filled with rows by test/helpers/mariadb.ts, then a clean shutdown) as the
 * root of the tree, with 2,000 small tables (16 KiB pages, partly sparse, as InnoDB's are) and four
 * large incompressible ones beside it, up to the requested size (bench/recipe.ts).
 *
 * Built once into a cache directory keyed by its recipe (`<cache>/<key>/src`, manifest beside it)
 * and reused while the manifest matches the tree, so a rerun does not rebuild it.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, lstatSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { INCOMPLETE_MARKER } from '../shared/ops.js';
import { createMariaDB } from '../test/helpers/mariadb.js';
import { onCleanup } from './procs.js';
import { PAGE, planFiles, recipeKey, type DatasetRecipe, type PlannedFile } from './recipe.js';

/** Share of a small table's pages that are mostly zeros (2 KiB random, 14 KiB zeros). */
const SPARSE_PAGE_SHARE = 0.15;

export interface Dataset {
  dir: string;
  key: string;
  recipe: DatasetRecipe;
  bytes: number;
  files: number;
  /** Bytes of the real MariaDB datadir within `bytes`. */
  datadirBytes: number;
  generated: boolean;
  generateSeconds: number;
}

interface Manifest {
  key: string;
  recipe: DatasetRecipe;
  bytes: number;
  files: number;
  datadirBytes: number;
  generatedAt: string;
}

/** The installed server's version line, part of the recipe (another version, another datadir). */
export function mariadbVersion(): string {
  return execFileSync('mariadbd', ['--version'], { encoding: 'utf8' }).trim();
}

function fill(buf: Buffer, kind: PlannedFile['kind'], seedIndex: number): void {
  randomFillSync(buf);
  if (kind === 'large') return; // incompressible: zstd finds nothing
  for (let p = 0; p + PAGE <= buf.length; p += PAGE) {
    if (((p / PAGE + seedIndex) * 2654435761) % 1000 < SPARSE_PAGE_SHARE * 1000) buf.fill(0, p + 2048, p + PAGE);
  }
}

function writeFileOfSize(path: string, file: PlannedFile, scratch: Buffer, index: number): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    let done = 0;
    while (done < file.size) {
      const n = Math.min(scratch.length, file.size - done);
      const slice = scratch.subarray(0, n);
      fill(slice, file.kind, index + done / PAGE);
      let off = 0;
      while (off < n) off += writeSync(fd, slice, off, n - off);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

function readManifest(path: string): Manifest | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

/** A real datadir: install, start, load rows, shut down cleanly; the server's files live outside it. */
async function buildDatadir(datadir: string, serverDir: string, rows: number, log: (line: string) => void): Promise<void> {
  log(`  MariaDB datadir: mariadb-install-db, then ${rows} rows in each of 3 tables`);
  const db = await createMariaDB({ baseDir: serverDir, datadir });
  const forget = onCleanup(() => db.destroy());
  try {
    await db.start();
    await db.loadSampleData(rows);
    await db.stop();
  } finally {
    forget();
    await db.destroy(); // kills a server still running (a failed load) and removes serverDir only
  }
}

/**
 * The dataset for a recipe under `cacheRoot`, built when its cache entry is missing or does not
 * match its manifest. The tree is built beside its final place and renamed into it, and the
 * manifest written last, so an interrupted build is never taken for a finished one.
 */
export async function ensureDataset(cacheRoot: string, recipe: DatasetRecipe, log: (line: string) => void): Promise<Dataset> {
  const key = recipeKey(recipe);
  const root = join(cacheRoot, key);
  const dir = join(root, 'src');
  const manifestPath = join(root, 'manifest.json');
  const manifest = existsSync(dir) ? readManifest(manifestPath) : null;
  if (manifest && manifest.key === key) {
    const stats = treeStats(dir);
    if (stats.bytes === manifest.bytes && stats.files.size === manifest.files) {
      return { dir, key, recipe, bytes: manifest.bytes, files: manifest.files, datadirBytes: manifest.datadirBytes, generated: false, generateSeconds: 0 };
    }
    log(`dataset in ${dir} does not match its manifest; rebuilding`);
  }
  log(`building the ${(recipe.totalBytes / 2 ** 20).toFixed(0)} MiB dataset ${key} into ${dir} (once; reused by later runs)`);
  const started = performance.now();
  rmSync(root, { recursive: true, force: true });
  const building = join(root, 'building');
  mkdirSync(building, { recursive: true });
  await buildDatadir(building, join(root, 'server'), recipe.mariadbRows, log);
  const datadirBytes = treeStats(building).bytes;
  const layout = planFiles(recipe, datadirBytes);
  log(`  ${layout.length} generated files beside a ${(datadirBytes / 2 ** 20).toFixed(0)} MiB datadir`);
  const scratch = Buffer.allocUnsafe(4 * 1024 * 1024);
  layout.forEach((file, index) => {
    const abs = join(building, file.path);
    mkdirSync(join(abs, '..'), { recursive: true });
    writeFileOfSize(abs, file, scratch, index * 7919);
  });
  renameSync(building, dir);
  const stats = treeStats(dir);
  const written: Manifest = { key, recipe, bytes: stats.bytes, files: stats.files.size, datadirBytes, generatedAt: new Date().toISOString() };
  writeFileSync(manifestPath, `${JSON.stringify(written, null, 2)}\n`);
  return { dir, key, recipe, bytes: stats.bytes, files: stats.files.size, datadirBytes, generated: true, generateSeconds: (performance.now() - started) / 1000 };
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
 * A seed's copy against its source (compareTrees, the target's incomplete-marker aside): `ok`, and
 * the line the bench records (`ok: N files, N bytes, sampled SHA-256 equal`, or what differs).
 */
export async function checkSeedCopy(source: string, target: string): Promise<{ ok: boolean; text: string }> {
  const check = await compareTrees(source, target, new Set([INCOMPLETE_MARKER]));
  return check.problem === null ? { ok: true, text: `ok: ${check.files} files, ${check.bytes} bytes, sampled SHA-256 equal` } : { ok: false, text: check.problem };
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
