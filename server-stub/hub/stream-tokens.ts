/**
 * One-time stream tokens: the only thing a data connection presents (never the agent's own
 * token). Each stream with data connections gets two, one per side, bound to the stream, the agent
 * and its role, valid once and until they expire or the stream closes. Only their SHA-256 is kept,
 * and nothing here logs one.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { DataRole } from '../../shared/data-link.js';
import type { ErrorCode } from '../../shared/errors.js';

export interface StreamTokens {
  send: string;
  receive: string;
}

/** What a data connection says it is, from its handshake headers. */
export interface DataClaim {
  stream: number;
  agentId: string;
  role: DataRole;
}

export type TokenVerdict =
  | { ok: true }
  | {
      ok: false;
      status: 401 | 403;
      code: ErrorCode;
      message: string;
      /** True when the token was never issued (or its stream ended): counts as a failed authentication. */
      unknown: boolean;
    };

interface TokenEntry {
  stream: number;
  agentId: string;
  role: DataRole;
  expiresAt: number;
  used: boolean;
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class StreamTokenRegistry {
  private readonly entries = new Map<string, TokenEntry>();
  private readonly ofStream = new Map<number, string[]>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Mints the two tokens of `stream`: `send` for agent `from`, `receive` for agent `to`. */
  mint(stream: number, route: { from: string; to: string }): StreamTokens {
    this.revoke(stream);
    const expiresAt = this.now() + this.ttlMs;
    const tokens: StreamTokens = { send: randomBytes(32).toString('base64url'), receive: randomBytes(32).toString('base64url') };
    const sendHash = hashToken(tokens.send);
    const receiveHash = hashToken(tokens.receive);
    this.entries.set(sendHash, { stream, agentId: route.from, role: 'send', expiresAt, used: false });
    this.entries.set(receiveHash, { stream, agentId: route.to, role: 'receive', expiresAt, used: false });
    this.ofStream.set(stream, [sendHash, receiveHash]);
    return tokens;
  }

  /**
   * Checks a presented token against the connection's claim and uses it up when it matches. A
   * token presented for the wrong stream, agent or role stays unused: whoever holds it is confused,
   * and the rightful side may still dial.
   */
  claim(token: string, claim: DataClaim): TokenVerdict {
    const entry = this.entries.get(hashToken(token));
    if (!entry) return { ok: false, status: 401, code: 'SEEDWIRE_AUTH', message: 'unknown stream token (never issued, or its stream ended)', unknown: true };
    const wrong =
      entry.stream !== claim.stream ? `stream ${claim.stream}` : entry.agentId !== claim.agentId ? `agent ${claim.agentId}` : entry.role !== claim.role ? `role ${claim.role}` : null;
    if (wrong !== null) return { ok: false, status: 403, code: 'SEEDWIRE_FORBIDDEN', message: `the stream token is not for ${wrong}`, unknown: false };
    if (entry.used) return { ok: false, status: 401, code: 'SEEDWIRE_AUTH', message: `the stream token of stream ${entry.stream} (${entry.role}) was already used`, unknown: false };
    if (this.now() >= entry.expiresAt) return { ok: false, status: 401, code: 'SEEDWIRE_AUTH', message: `the stream token of stream ${entry.stream} (${entry.role}) expired unused`, unknown: false };
    entry.used = true;
    return { ok: true };
  }

  /** The stream ended: its tokens die with it. */
  revoke(stream: number): void {
    for (const hash of this.ofStream.get(stream) ?? []) this.entries.delete(hash);
    this.ofStream.delete(stream);
  }

  get size(): number {
    return this.entries.size;
  }
}
