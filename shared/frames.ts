/**
 * Every text frame of the agent–controller protocol, each defined once as a zod schema.
 * Types come from z.infer; nothing else defines a frame. See docs/protocol.md.
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from './errors.js';
import { LIMITS } from './limits.js';

/** Call ids, agent ids, session ids: printable, bounded. */
export const IdSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:@-]+$/, 'letters, digits and . _ : @ - only');
const ErrorCodeSchema = z.string().refine((c): c is ErrorCode => Object.hasOwn(ERROR_CODES, c), 'unknown error code');
const Params = z.record(z.string(), z.unknown());

export const SnapshotSchema = z.object({
  name: z.string(),
  path: z.string(),
  createdAt: z.string().nullable(),
  sizeBytes: z.number().nullable(),
  mounted: z.boolean(),
});
export type Snapshot = z.infer<typeof SnapshotSchema>;

export const MountSchema = z.object({ name: z.string(), mountPoint: z.string(), dataPath: z.string() });
export type Mount = z.infer<typeof MountSchema>;

/** What an agent knows about its host; pushed on connect and whenever it changes. */
export const FactsSchema = z.object({
  hostname: z.string(),
  datacenter: z.string().nullable(),
  mysqlConfigured: z.boolean(),
  mysqlRunning: z.boolean().nullable(),
  mysqlPort: z.number().int().nullable(),
  datadir: z.string().nullable(),
  datadirBytes: z.number().nullable(),
  datadirFreeBytes: z.number().nullable(),
  incompleteSeed: z.string().nullable(),
  snapshotBackend: z.enum(['lvm', 'btrfs', 'none']),
  snapshots: z.array(SnapshotSchema),
  mounted: MountSchema.nullable(),
  backupTool: z.enum(['mariabackup', 'xtrabackup']).nullable(),
  customCommands: z.array(z.string()),
  /** CPUs the agent may use (the seed's default lane count); absent from agents older than lanes. */
  cpus: z.number().int().positive().optional(),
  collectedAt: z.string(),
});
export type Facts = z.infer<typeof FactsSchema>;

// ---- handshake -------------------------------------------------------------------------------

export const HelloFrame = z.object({
  t: z.literal('hello'),
  v: z.number().int(),
  agentId: IdSchema,
  hostname: z.string().max(255),
  version: z.string().max(64),
  capabilities: z.array(z.string().max(64)).max(256),
  datacenter: z.string().max(128).nullable(),
  /** Random per agent process; a new boot id means in-memory state was lost. */
  bootId: z.string().max(64),
  /** Agent's wall clock (ms since epoch) when the hello was sent; the controller derives skew. */
  clock: z.number(),
  /** Calls whose results wait in the agent's ledger for delivery. */
  pending: z.array(IdSchema).max(LIMITS.maxAckIds),
  /** Calls still running on the agent. */
  running: z.array(IdSchema).max(LIMITS.maxAckIds),
});

export const WelcomeFrame = z.object({
  t: z.literal('welcome'),
  v: z.number().int(),
  sessionId: IdSchema,
  clock: z.number(),
  heartbeatMs: z.number().int().positive(),
  deadAfterMs: z.number().int().positive(),
  /**
   * This controller acknowledges stored output (`ack` frames' `output`): the agent keeps what it
   * sent until then and sends it again after a reconnect. Absent from older controllers.
   */
  acksOutput: z.boolean().optional(),
  /**
   * This controller pings each agent every `heartbeatMs` from its liveness sweep: the agent then
   * pings only after a silence (agent/connection/heartbeat.ts). Absent from older controllers.
   */
  pingsAgents: z.boolean().optional(),
});

/**
 * Enrollment (an agent that connected with the enrollment token): the controller hands the new id
 * its own credential after the hello; the agent stores it and confirms with `enrolled`, and only
 * then does the controller commit it and send the welcome.
 */
export const EnrollFrame = z.object({
  t: z.literal('enroll'),
  agentId: IdSchema,
  credential: z.string().min(32).max(256),
});

export const EnrolledFrame = z.object({ t: z.literal('enrolled'), agentId: IdSchema });

// ---- RPC -------------------------------------------------------------------------------------

export const CallFrame = z.object({
  t: z.literal('call'),
  id: IdSchema,
  op: z.string().min(1).max(64),
  params: Params,
  timeoutMs: z.number().int().positive().optional(),
});

export const ResultFrame = z.object({
  t: z.literal('result'),
  id: IdSchema,
  result: z.unknown(),
  exitCode: z.number().int().nullable().optional(),
  durationMs: z.number().nonnegative(),
});

/** A call's failure (id set) or a connection-level complaint about a bad frame (id null). */
export const ErrorFrame = z.object({
  t: z.literal('error'),
  id: IdSchema.nullable(),
  code: ErrorCodeSchema,
  message: z.string().max(64 * 1024),
  exitCode: z.number().int().nullable().optional(),
  details: z.unknown().optional(),
});

export const CancelFrame = z.object({ t: z.literal('cancel'), id: IdSchema, reason: z.string().max(1024) });

/** In the hello's capabilities: this agent keeps output until the controller acknowledges it. */
export const OUTPUT_ACKS_CAPABILITY = 'output-acks';

/** A call's output the controller has stored, every frame up to and including `seq`. */
export const OutputAck = z.object({ id: IdSchema, seq: z.number().int().nonnegative() });

/**
 * The controller has stored these results (`ids`; the agent may forget them) and these calls'
 * output up to a `seq` (`output`, only to agents that offer OUTPUT_ACKS_CAPABILITY; the agent
 * forgets those frames and no longer sends them again after a reconnect).
 */
export const AckFrame = z.object({
  t: z.literal('ack'),
  ids: z.array(IdSchema).max(LIMITS.maxAckIds),
  output: z.array(OutputAck).max(LIMITS.maxAckIds).optional(),
});

/** Ordered command output. `seq` counts frames per call from 0; `gap` is bytes dropped just before. */
export const OutputFrame = z.object({
  t: z.literal('output'),
  id: IdSchema,
  seq: z.number().int().nonnegative(),
  stream: z.enum(['stdout', 'stderr']),
  data: z.string(),
  gap: z.number().int().nonnegative().optional(),
});

export const ProgressFrame = z.object({ t: z.literal('progress'), id: IdSchema, data: Params });

export const FactsFrame = z.object({ t: z.literal('facts'), facts: FactsSchema });

export const PingFrame = z.object({ t: z.literal('ping'), ts: z.number() });
export const PongFrame = z.object({ t: z.literal('pong'), ts: z.number() });

/** Receiver → controller → sender: the sender may send stream bytes below `limit`. */
export const CreditFrame = z.object({
  t: z.literal('credit'),
  stream: z.number().int().nonnegative().max(0xffffffff),
  limit: z.number().int().nonnegative(),
});

/**
 * Controller → agent (cluster mode): close this link and dial `url` next. The agent obeys only
 * when `url` is one of its configured controllers, so a controller cannot send the agent's
 * credential to a host of its choosing (docs/security.md).
 */
export const MoveFrame = z.object({ t: z.literal('move'), url: z.string().min(1).max(2048), reason: z.string().max(1024) });

export const FrameSchema = z.discriminatedUnion('t', [
  HelloFrame,
  WelcomeFrame,
  EnrollFrame,
  EnrolledFrame,
  CallFrame,
  ResultFrame,
  ErrorFrame,
  CancelFrame,
  AckFrame,
  OutputFrame,
  ProgressFrame,
  FactsFrame,
  PingFrame,
  PongFrame,
  CreditFrame,
  MoveFrame,
]);

export type Frame = z.infer<typeof FrameSchema>;
export type HelloFrame = z.infer<typeof HelloFrame>;
export type WelcomeFrame = z.infer<typeof WelcomeFrame>;
export type EnrollFrame = z.infer<typeof EnrollFrame>;
export type EnrolledFrame = z.infer<typeof EnrolledFrame>;
export type CallFrame = z.infer<typeof CallFrame>;
export type ResultFrame = z.infer<typeof ResultFrame>;
export type ErrorFrame = z.infer<typeof ErrorFrame>;
export type CancelFrame = z.infer<typeof CancelFrame>;
export type AckFrame = z.infer<typeof AckFrame>;
export type OutputFrame = z.infer<typeof OutputFrame>;
export type ProgressFrame = z.infer<typeof ProgressFrame>;
export type FactsFrame = z.infer<typeof FactsFrame>;
export type CreditFrame = z.infer<typeof CreditFrame>;
export type MoveFrame = z.infer<typeof MoveFrame>;
export type FrameType = Frame['t'];

/** WebSocket close codes used by seedwire (4000–4999 are application codes). */
export const CLOSE_CODES = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 4000,
  superseded: 4001,
  handshakeTimeout: 4002,
  versionMismatch: 4003,
  heartbeatTimeout: 4004,
  /** The agent's identity was refused at the hello (revoked, enrolled elsewhere, wrong certificate). */
  identityRefused: 4005,
  /** The agent leaves for another of its controllers, as a move frame asked (cluster mode). */
  moved: 4006,
} as const;
