/**
 * Operation names and their parameter schemas, shared by the controller (validates before
 * sending, 400 on bad params) and the agent (validates again at its boundary).
 * Public operations are the ones in the README ("Operations"); `seed-*` operations are internal: only
 * the controller's seed state machine calls them, the HTTP API refuses them.
 */
import { z } from 'zod';
import { CODECS } from './codec.js';

const NoParams = z.object({}).strict();
const SnapshotName = z.string().min(1).max(100).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits and . _ - only').refine((s) => s !== '.' && s !== '..', 'not . or ..');
const CustomName = z.string().min(1).max(100).regex(/^[A-Za-z0-9._-]+$/, 'letters, digits and . _ - only');

export const PUBLIC_OP_PARAMS = {
  hostname: NoParams,
  facts: NoParams,
  'mysql-status': NoParams,
  'mysql-start': NoParams,
  'mysql-stop': NoParams,
  'mysql-port': NoParams,
  'mysql-du': NoParams,
  'mysql-datadir-available-space': NoParams,
  'mysql-error-log-tail': z.object({ lines: z.number().int().min(1).max(10_000).optional() }).strict(),
  'delete-mysql-datadir': NoParams,
  snapshots: NoParams,
  'create-snapshot': z.object({ name: SnapshotName.optional() }).strict(),
  'mount-snapshot': z.object({ name: SnapshotName }).strict(),
  'unmount-snapshot': NoParams,
  'remove-snapshot': z.object({ name: SnapshotName }).strict(),
  'custom-command': z.object({ name: CustomName }).strict(),
  exec: z.object({ command: z.string().min(1).max(64 * 1024) }).strict(),
} as const;

export const CodecSchema = z.enum(CODECS);
/** The hot-backup tools a `backup` seed can use (agent config `backup.tool`). */
export const BackupToolSchema = z.enum(['mariabackup', 'xtrabackup']);

/** Where a seed's bytes are read from on the source. */
export const SeedSourceSchema = z.discriminatedUnion('kind', [
  /** The live datadir of a stopped server (cold seed). */
  z.object({ kind: z.literal('datadir') }),
  /** The datadir inside the mounted snapshot (snapshot seed). */
  z.object({ kind: z.literal('snapshot') }),
  /** A mariabackup/xtrabackup stream from the running server (hot seed; not seekable). */
  z.object({ kind: z.literal('backup') }),
]);

export const INTERNAL_OP_PARAMS = {
  /** Target: check space and the datadir guard, write the incomplete marker, then empty the datadir. */
  'seed-prepare-target': z.object({ seedId: z.string().min(1).max(128), requiredBytes: z.number().int().nonnegative() }).strict(),
  /**
   * Target: receive stream `stream` into the datadir; reports {ready, offset} then {committed} progress.
   * `format`: 'tree' (the seed stream of docs/seed-stream.md, resumable) or 'stream' (a backup
   * tool's xbstream, extracted by `backupTool`'s extractor; never resumed: always from offset 0).
   */
  'seed-receive': z
    .object({
      seedId: z.string().min(1).max(128),
      stream: z.number().int().nonnegative(),
      resume: z.boolean(),
      format: z.enum(['tree', 'stream']).default('tree'),
      backupTool: BackupToolSchema.optional(),
      /** Most file bytes the stream may declare (the precheck's size plus its margin); a stream declaring more is refused. */
      maxBytes: z.number().int().nonnegative().optional(),
    })
    .strict(),
  /** Source: send the seed stream from `offset`, never past the credit `limit`. */
  'seed-send': z
    .object({
      seedId: z.string().min(1).max(128),
      stream: z.number().int().nonnegative(),
      source: SeedSourceSchema,
      offset: z.number().int().nonnegative(),
      limit: z.number().int().nonnegative(),
      compression: CodecSchema,
      /** Bandwidth cap for this seed, raw bytes per second. */
      maxBytesPerSec: z.number().int().positive().optional(),
    })
    .strict(),
  /** Target: compare digests, fix ownership, drop identity/pid/socket files, remove the marker, maybe start MySQL. */
  'seed-finalize-target': z
    .object({
      seedId: z.string().min(1).max(128),
      digest: z.string(),
      startMysql: z.boolean(),
      /** A backup seed: run `<tool> --prepare` on the datadir first (apply the copied redo log). */
      prepare: BackupToolSchema.optional(),
    })
    .strict(),
  /** Target: after a failed or aborted seed, remove partial data (keeping the marker) only if this seed's marker is there and the guard passes. */
  'seed-cleanup-target': z.object({ seedId: z.string().min(1).max(128) }).strict(),
  /** Source: the datadir size as the seed will read it (for prechecks and progress totals). */
  'seed-source-size': z.object({ source: SeedSourceSchema }).strict(),
} as const;

export type PublicOpName = keyof typeof PUBLIC_OP_PARAMS;
export type InternalOpName = keyof typeof INTERNAL_OP_PARAMS;
export type OpName = PublicOpName | InternalOpName;
export const PUBLIC_OPS = Object.keys(PUBLIC_OP_PARAMS) as PublicOpName[];
export const INTERNAL_OPS = Object.keys(INTERNAL_OP_PARAMS) as InternalOpName[];
export const ALL_OP_PARAMS = { ...PUBLIC_OP_PARAMS, ...INTERNAL_OP_PARAMS } as const;

export type OpParams<N extends OpName> = z.infer<(typeof ALL_OP_PARAMS)[N]>;

export function isPublicOp(name: string): name is PublicOpName {
  return Object.hasOwn(PUBLIC_OP_PARAMS, name);
}
export function isKnownOp(name: string): name is OpName {
  return Object.hasOwn(ALL_OP_PARAMS, name);
}

/** Names of files a seed never carries (server identity, pid, socket, the marker itself). */
export const SEED_EXCLUDED_NAMES = ['auto.cnf', '.seedwire-incomplete'] as const;
export const SEED_EXCLUDED_SUFFIXES = ['.pid', '.sock', '.sock.lock'] as const;
export const INCOMPLETE_MARKER = '.seedwire-incomplete';
