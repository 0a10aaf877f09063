/**
 * NATS subjects of the cluster bus. An agent id may hold `.` `:` `@` (and NATS gives `.`, `*` and
 * `>` meaning), so an id travels as one base64url token, which uses none of them.
 */
export const SUBJECT_ROOT = 'seedwire';

/** One subject token for any agent id: base64url of its UTF-8 bytes (prefixed so an empty id still makes a token). */
export function encodeAgentToken(agentId: string): string {
  return `a${Buffer.from(agentId, 'utf8').toString('base64url')}`;
}

export function decodeAgentToken(token: string): string | null {
  if (!/^a[A-Za-z0-9_-]*$/.test(token)) return null;
  return Buffer.from(token.slice(1), 'base64url').toString('utf8');
}

/** What the controller holding an agent answers: `start`, `cancel`, `get`, `move` (request/reply). */
export type AgentVerb = 'start' | 'cancel' | 'get' | 'move';

export const SUBJECTS = {
  agent: (agentId: string, verb: AgentVerb): string => `${SUBJECT_ROOT}.agent.${encodeAgentToken(agentId)}.${verb}`,
  /** Every verb of one agent: the holder's one subscription per held agent. */
  agentAll: (agentId: string): string => `${SUBJECT_ROOT}.agent.${encodeAgentToken(agentId)}.*`,
  /** Asked of every controller: who has this operation (its row, optionally its output)? Only the one that has it answers. */
  opLookup: `${SUBJECT_ROOT}.ops.lookup`,
  /** Asked of every controller: cancel this operation if you run it. Only the one that runs it answers. */
  opCancel: `${SUBJECT_ROOT}.ops.cancel`,
  /** Every controller's event-bus events, fanned out to the others. */
  events: `${SUBJECT_ROOT}.events`,
  /** "I now hold agent X": an older holder stops answering for it. */
  claims: `${SUBJECT_ROOT}.presence.claim`,
  /** Answered by the controller whose advertise URL this is (one base64url token): is it a live member? */
  member: (advertiseUrl: string): string => `${SUBJECT_ROOT}.member.u${Buffer.from(advertiseUrl, 'utf8').toString('base64url')}`,
  /** A routed operation's output stream back to the requester. */
  stream: (controllerId: string, streamId: string): string => `${SUBJECT_ROOT}.stream.${controllerId}.${streamId}`,
} as const;
