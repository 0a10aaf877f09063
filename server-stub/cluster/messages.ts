/**
 * Every message of the cluster bus, one zod schema each; types come from z.infer. A message that
 * does not parse is dropped (or answered with an error) and logged with the field that failed.
 */
import { z } from 'zod';
import { isErrorCode, SeedwireError } from '../../shared/errors.js';
import type { Operation } from '../ops/types.js';

const Id = z.string().min(1).max(256);

export const OperationSchema = z.object({
  id: Id,
  agentId: z.string().max(256),
  op: z.string().max(128),
  params: z.record(z.string(), z.unknown()),
  state: z.enum(['running', 'succeeded', 'failed', 'canceled']),
  createdAt: z.string(),
  endedAt: z.string().nullable(),
  result: z.unknown(),
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).nullable(),
  exitCode: z.number().int().nullable(),
  outputTail: z.string(),
  actor: z.string(),
  seedId: z.string().nullable(),
}) satisfies z.ZodType<Operation>;

export const WireError = z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() });
export type WireError = z.infer<typeof WireError>;

/** Requester → holder, on `seedwire.agent.<id>.start`. */
export const StartRequest = z.object({
  requester: Id,
  /** Where the holder publishes the operation's output and end (StreamMessage). */
  stream: z.string().min(1).max(512),
  op: z.string().min(1).max(128),
  params: z.record(z.string(), z.unknown()),
  /** Only the API's operations are routed; the seed machine's (actor `seed:<id>`, internal seed-* ops) never are. */
  actor: z.literal('admin'),
  /**
   * The requester takes an end carried in the reply: an operation that ended before the reply,
   * with no output sent, then gets no `end` on its stream. (Releases before this field wait for
   * that `end`; a holder that does not know the field sends it, which such a requester ignores.)
   */
  endInReply: z.boolean().optional(),
});
export type StartRequest = z.infer<typeof StartRequest>;

export const OperationReply = z.union([z.object({ ok: z.literal(true), operation: OperationSchema.nullable() }), z.object({ ok: z.literal(false), error: WireError })]);
export type OperationReply = z.infer<typeof OperationReply>;

/** Requester → holder, on `seedwire.agent.<id>.cancel` and `.get`, and to all on `seedwire.ops.*`. */
export const OperationRequest = z.object({
  requester: Id,
  operationId: Id,
  reason: z.string().max(1024).optional(),
  /** lookup only: also send the stored output text. */
  output: z.boolean().optional(),
});
export type OperationRequest = z.infer<typeof OperationRequest>;

/** The answer to a lookup from the controller that has the operation. */
export const LookupReply = z.object({
  operation: OperationSchema,
  output: z.string().optional(),
  /** The last output frame's seq that `output` covers (null: none seen), so a follower skips what it already has. */
  outputSeq: z.number().int().nullable().optional(),
});
export type LookupReply = z.infer<typeof LookupReply>;

/**
 * Holder → requester on the stream subject, numbered from 1 so the requester sees a loss: output
 * chunks as the agent sends them, `alive` while the operation runs quietly, `end` with the final row.
 */
export const StreamMessage = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('output'), n: z.number().int().positive(), seq: z.number().int().nonnegative(), stream: z.enum(['stdout', 'stderr']), data: z.string() }),
  z.object({ kind: z.literal('alive'), n: z.number().int().positive() }),
  z.object({ kind: z.literal('end'), n: z.number().int().positive(), operation: OperationSchema }),
]);
export type StreamMessage = z.infer<typeof StreamMessage>;

const EventType = z.enum(['agent', 'operation', 'output', 'seed', 'audit']);

/** One event (what releases before batching sent: still accepted from them during an upgrade). */
export const ClusterEvent = z.object({
  origin: Id,
  type: EventType,
  at: z.string(),
  data: z.unknown(),
});
export type ClusterEvent = z.infer<typeof ClusterEvent>;

/** The events one controller published in one turn of its event loop, in order. */
export const ClusterEvents = z.object({
  origin: Id,
  events: z.array(z.object({ type: EventType, at: z.string(), data: z.unknown() })).min(1).max(100_000),
});
export type ClusterEvents = z.infer<typeof ClusterEvents>;

/** On `seedwire.events`: a batch, or a single event from an older release. */
export const ClusterEventsMessage = z.union([ClusterEvents, ClusterEvent]);
export type ClusterEventsMessage = z.infer<typeof ClusterEventsMessage>;

/** `url`: the claimer's advertise URL (where agents and peers reach it). */
export const Claim = z.object({ origin: Id, agentId: z.string().max(256), url: z.string().max(2048) });
export type Claim = z.infer<typeof Claim>;

/**
 * A seed's owner → the agent's holder, on `seedwire.agent.<id>.move`: send the agent to `url` (the
 * owner's advertise URL, http(s) origin). The holder moves it only to a live cluster member.
 */
export const MoveRequest = z.object({ requester: Id, url: z.string().min(1).max(2048), reason: z.string().max(1024) });
export type MoveRequest = z.infer<typeof MoveRequest>;

/** `moved`: the move frame was sent (false: the agent is already there or its link just ended). */
export const MoveReply = z.union([z.object({ ok: z.literal(true), moved: z.boolean() }), z.object({ ok: z.literal(false), error: WireError })]);
export type MoveReply = z.infer<typeof MoveReply>;

/** On `seedwire.member.<url>`: the controller advertising that URL answers with its id. */
export const MemberRequest = z.object({ requester: Id });
export const MemberReply = z.object({ controllerId: Id, url: z.string().max(2048) });
export type MemberReply = z.infer<typeof MemberReply>;

export function encodeMessage(message: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

/** Parses a message or throws SEEDWIRE_BAD_FRAME naming the field. */
export function decodeMessage<T>(schema: z.ZodType<T>, data: Uint8Array, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
  } catch {
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `${what}: not JSON`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SeedwireError('SEEDWIRE_BAD_FRAME', `${what}: ${issue?.path.join('.') || 'message'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

export function toWireError(error: SeedwireError): WireError {
  return error.details === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, details: error.details };
}

/** A peer's error as a SeedwireError (an unknown code becomes SEEDWIRE_INTERNAL, keeping the peer's code in the message). */
export function fromWireError(error: WireError): SeedwireError {
  if (isErrorCode(error.code)) return new SeedwireError(error.code, error.message, error.details === undefined ? {} : { details: error.details });
  return new SeedwireError('SEEDWIRE_INTERNAL', `${error.code}: ${error.message}`);
}
