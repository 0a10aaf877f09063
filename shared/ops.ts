/**
 * Operation names and their parameter schemas, shared by the controller (validates before
 * sending, 400 on bad params) and the agent (validates again at its boundary).
 * Public operations are the ones in the README ("Operations"); `seed-*` operations are internal: only
 * the controller's seed state machine calls them, the HTTP API refuses them.
 */
import { z } from 'zod';
import { CODECS } from './codec.js';
import { DataTicketSchema } from './data-link.js';
import { FactsSchema, MountSchema, SnapshotSchema } from './frames.js';
import { LaneSchema, MAX_LANES } from './lanes.js';

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
/** The hash of each file's content in a tree seed (agent/transfer/content-hash.ts); absent: sha256. */
export const ContentHashSchema = z.enum(['sha256', 'blake3']);
export type ContentHashName = z.infer<typeof ContentHashSchema>;
/** In the hello's capabilities: this agent hashes seed content with BLAKE3 when a seed step asks for it. */
export const CONTENT_HASH_BLAKE3_CAPABILITY = 'content-hash-blake3';
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
      /** Receive on a data connection of its own, opened with this stream token (absent: on the control link). */
      data: DataTicketSchema.optional(),
      /** This stream is one lane of a seed over several (its own checkpoint); absent: the one lane. */
      lane: LaneSchema.optional(),
      /** How file contents are hashed (a tree stream); sent only to agents that offer BLAKE3; absent: sha256. */
      contentHash: ContentHashSchema.optional(),
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
      /** Send on a data connection of its own, opened with this stream token (absent: on the control link). */
      data: DataTicketSchema.optional(),
      /** Send only this lane's part of the tree; absent: the whole tree. */
      lane: LaneSchema.optional(),
      /** How file contents are hashed (a tree stream); sent only to agents that offer BLAKE3; absent: sha256. */
      contentHash: ContentHashSchema.optional(),
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
      /** The seed ran over this many lanes: every lane must be complete; `digest` is their combination. */
      lanes: z.number().int().min(2).max(MAX_LANES).optional(),
    })
    .strict(),
  /** Target: after a failed or aborted seed, remove partial data (keeping the marker) only if this seed's marker is there and the guard passes. */
  'seed-cleanup-target': z.object({ seedId: z.string().min(1).max(128) }).strict(),
  /** Source: the datadir size as the seed will read it (for prechecks and progress totals). */
  'seed-source-size': z.object({ source: SeedSourceSchema }).strict(),
} as const;

// ---- results ---------------------------------------------------------------------------------
// What each operation answers. The agent's handlers are typed by these (agent/ops/types.ts), and
// the controller validates every answer against them (server-stub/hub/contract.ts): a result
// that does not match is SEEDWIRE_PROTOCOL naming the op and the field, never a cast that breaks
// later. Unknown keys are dropped, so a newer agent may add fields an older controller ignores.

/** A command-like op: the command's exit code (a non-zero exit is a result, not an error). */
const ExitResult = z.object({ exitCode: z.number().int().nullable() });
const Running = z.object({ running: z.boolean() });
const Bytes = z.object({ bytes: z.number().nonnegative() });

export const BinlogCoordinatesSchema = z.object({ file: z.string().min(1), position: z.number().int().nonnegative(), gtid: z.string().optional() });
/** What a whole seed stream described; returned by both the sender and the receiver. */
export const TransferSummarySchema = z.object({
  files: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  digest: z.string().min(1),
});
export type TransferSummary = z.infer<typeof TransferSummarySchema>;
/** The sender's summary: plus the binlog coordinates of the copy and, for a backup seed, the tool that made it. */
export const SendSummarySchema = TransferSummarySchema.extend({
  binlog: BinlogCoordinatesSchema.optional(),
  tool: BackupToolSchema.optional(),
});
export type SendSummary = z.infer<typeof SendSummarySchema>;

export const PUBLIC_OP_RESULTS = {
  hostname: z.object({ hostname: z.string() }),
  facts: FactsSchema,
  'mysql-status': Running,
  'mysql-start': Running,
  'mysql-stop': Running,
  'mysql-port': z.object({ port: z.number().int() }),
  'mysql-du': Bytes,
  'mysql-datadir-available-space': Bytes,
  'mysql-error-log-tail': z.object({ lines: z.array(z.string()) }),
  'delete-mysql-datadir': z.object({ deleted: z.literal(true) }),
  snapshots: z.array(SnapshotSchema),
  'create-snapshot': SnapshotSchema,
  'mount-snapshot': MountSchema.pick({ mountPoint: true, dataPath: true }),
  'unmount-snapshot': z.object({ mounted: z.literal(false) }),
  'remove-snapshot': z.object({ removed: z.literal(true) }),
  'custom-command': ExitResult,
  exec: ExitResult,
} as const satisfies Record<PublicOpName, z.ZodType>;

export const INTERNAL_OP_RESULTS = {
  'seed-prepare-target': z.object({ freeBytes: z.number().nonnegative() }),
  'seed-receive': TransferSummarySchema,
  'seed-send': SendSummarySchema,
  'seed-finalize-target': z.object({ started: z.boolean(), running: z.boolean() }),
  'seed-cleanup-target': z.object({ cleaned: z.boolean(), reason: z.string() }),
  'seed-source-size': z.object({ bytes: z.number().int().nonnegative(), files: z.number().int().nonnegative() }),
} as const satisfies Record<InternalOpName, z.ZodType>;

/**
 * Progress an op reports while it runs (ctx.progress on the agent, onProgress on the controller).
 * Ops not listed report none. A progress frame that does not match is dropped (and logged).
 */
export const OP_PROGRESS = {
  /**
   * First `{ready, offset}` (where the sender must start), then `{committed, received, bytesPerSec?,
   * window?}`; `window` is the receiver's credit window in bytes (docs/reliability.md).
   */
  'seed-receive': z.union([
    z.object({ ready: z.literal(true), offset: z.number().int().nonnegative() }),
    z.object({
      committed: z.number().int().nonnegative(),
      received: z.number().int().nonnegative(),
      bytesPerSec: z.number().nonnegative().optional(),
      window: z.number().int().positive().optional(),
    }),
  ]),
  'seed-send': z.object({ sent: z.number().int().nonnegative() }),
} as const satisfies Partial<Record<OpName, z.ZodType>>;

export type PublicOpName = keyof typeof PUBLIC_OP_PARAMS;
export type InternalOpName = keyof typeof INTERNAL_OP_PARAMS;
export type OpName = PublicOpName | InternalOpName;
export const PUBLIC_OPS = Object.keys(PUBLIC_OP_PARAMS) as PublicOpName[];
export const INTERNAL_OPS = Object.keys(INTERNAL_OP_PARAMS) as InternalOpName[];
export const ALL_OP_PARAMS = { ...PUBLIC_OP_PARAMS, ...INTERNAL_OP_PARAMS } as const;

export const ALL_OP_RESULTS = { ...PUBLIC_OP_RESULTS, ...INTERNAL_OP_RESULTS } as const;

/** An op's params as its handler sees them (defaults applied). */
export type OpParams<N extends OpName> = z.output<(typeof ALL_OP_PARAMS)[N]>;
/** An op's params as a caller writes them (defaults may be left out). */
export type OpParamsInput<N extends OpName> = z.input<(typeof ALL_OP_PARAMS)[N]>;
/** What an op answers. */
export type OpResultOf<N extends OpName> = z.output<(typeof ALL_OP_RESULTS)[N]>;
type ProgressOps = keyof typeof OP_PROGRESS;
/** What an op reports as progress (an empty record type for ops that report none). */
export type OpProgressOf<N extends OpName> = N extends ProgressOps ? z.output<(typeof OP_PROGRESS)[N]> : Record<string, never>;

export function progressSchemaOf(op: OpName): z.ZodType | null {
  return Object.hasOwn(OP_PROGRESS, op) ? OP_PROGRESS[op as ProgressOps] : null;
}

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

/** A succeeded seed's result as the API shows it (`GET /api/seeds/:id` → result). */
export const SeedResultSchema = z.object({
  files: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  digest: z.string(),
  /** Transfer attempts it took (1 + resumes). */
  attempts: z.number().int().positive().optional(),
  /** Where a replica of the source starts replicating from (absent when the source has no binary log). */
  binlog: BinlogCoordinatesSchema.optional(),
  /** A backup seed: the tool that made the copy. */
  backupTool: BackupToolSchema.optional(),
});
export type SeedResult = z.infer<typeof SeedResultSchema>;
