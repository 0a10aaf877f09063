/**
 * The bench dataset's recipe and layout, pure: what bench/dataset.ts builds and under which
 * cache key. A real MariaDB datadir (mariadb-install-db plus rows) is the root of the tree; beside
 * it, large incompressible tables and 2,000 small ones fill the tree up to the requested size.
 * The key names the recipe, so a rerun with the same recipe reuses the cached tree and a changed
 * recipe (size, rows, MariaDB version, layout version) builds its own.
 */
import { createHash } from 'node:crypto';

/** Bumped whenever the layout or the content of generated files changes. */
export const RECIPE_VERSION = 2;
export const PAGE = 16 * 1024;
/** Default dataset size: 1.5 GiB (1.61 GB), issue 13's "≥ 1.5 GB". */
export const DEFAULT_BYTES = 1.5 * 2 ** 30;
export const SMALL_FILES = 2_000;
/** Rows per sample table (3 tables) at the default size; scaled with the size, at least 1,000. */
export const DEFAULT_ROWS = 200_000;
/** Small table sizes, cycled: mean 62 KiB, so 2,000 of them are about 121 MiB. */
const SMALL_SIZES_KIB = [16, 32, 48, 64, 64, 80, 96, 96];
const LARGE_FILES: ReadonlyArray<readonly [string, number]> = [
  ['shop/order_items.ibd', 0.35],
  ['shop/events.ibd', 0.25],
  ['shop/customers.ibd', 0.25],
  ['archive/ledger_2025.ibd', 0.15],
];

export interface DatasetRecipe {
  version: number;
  /** Total bytes of the tree, the MariaDB datadir included. */
  totalBytes: number;
  smallFiles: number;
  /** Rows in each of the sample tables t1..t3 of the real datadir. */
  mariadbRows: number;
  /** `mariadbd --version`: another server version lays out another datadir. */
  mariadb: string;
}

export function makeRecipe(totalBytes: number, mariadb: string): DatasetRecipe {
  if (!Number.isFinite(totalBytes) || totalBytes < 64 * 2 ** 20) throw new Error(`dataset size: at least 64 MiB, got ${totalBytes} bytes`);
  const mariadbRows = Math.max(1_000, Math.round((DEFAULT_ROWS * totalBytes) / DEFAULT_BYTES));
  return { version: RECIPE_VERSION, totalBytes: Math.floor(totalBytes), smallFiles: SMALL_FILES, mariadbRows, mariadb: mariadb.trim() };
}

/** `<MiB>m-<16 hex of the recipe's SHA-256>`: readable in a listing, unique per recipe. */
export function recipeKey(recipe: DatasetRecipe): string {
  const canonical = JSON.stringify([recipe.version, recipe.totalBytes, recipe.smallFiles, recipe.mariadbRows, recipe.mariadb]);
  const hash = createHash('sha256').update(canonical).digest('hex').slice(0, 16);
  return `${Math.round(recipe.totalBytes / 2 ** 20)}m-${hash}`;
}

export type FileKind = 'large' | 'small';

export interface PlannedFile {
  path: string;
  size: number;
  kind: FileKind;
}

const pages = (bytes: number): number => Math.max(1, Math.floor(bytes / PAGE)) * PAGE;

/**
 * The generated files beside a datadir of `datadirBytes`: 2,000 small tables in 20 schemas
 * (`db00`..`db19`), then four large ones sharing what is left of `totalBytes` (at least one page
 * each). Deterministic for a recipe and a datadir size.
 */
export function planFiles(recipe: DatasetRecipe, datadirBytes: number): PlannedFile[] {
  const files: PlannedFile[] = [];
  let smallBytes = 0;
  for (let i = 0; i < recipe.smallFiles; i += 1) {
    const schema = `db${String(i % 20).padStart(2, '0')}`;
    const table = `t${String(Math.floor(i / 20)).padStart(4, '0')}`;
    const size = SMALL_SIZES_KIB[i % SMALL_SIZES_KIB.length]! * 1024;
    files.push({ path: `${schema}/${table}.ibd`, size, kind: 'small' });
    smallBytes += size;
  }
  const left = Math.max(0, recipe.totalBytes - datadirBytes - smallBytes);
  for (const [path, share] of LARGE_FILES) files.push({ path, size: pages(left * share), kind: 'large' });
  return files;
}
