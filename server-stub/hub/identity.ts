/**
 * What a hello may do given who the connection proved to be (auth.ts): be admitted as its agent,
 * enroll a new id, or be refused. Pure, so the rules are tested without sockets; the hub applies them.
 *
 * The rules that stop an id from being borrowed:
 * - the enrollment token only claims an id that has no identity yet (or was re-admitted once),
 *   is not named in --agent-tokens, and is not connected right now;
 * - a per-agent token, credential or certificate admits only its own id, never a revoked one.
 */
import { randomBytes } from 'node:crypto';
import { CLOSE_CODES } from '../../shared/frames.js';
import type { IdentityRow } from '../store/identities.js';
import type { AgentPrincipal } from './auth.js';

export type HelloDecision =
  | { action: 'admit' }
  | { action: 'enroll' }
  | { action: 'refuse'; closeCode: number; message: string };

export interface HelloContext {
  /** Ids named in --agent-tokens. */
  hasOwnToken(agentId: string): boolean;
  identity: IdentityRow | null;
  /** Whether a welcomed session of this id is connected now. */
  connected: boolean;
}

const PROOF: Record<Extract<AgentPrincipal, { kind: 'agent' }>['via'], string> = {
  token: 'per-agent token',
  credential: 'credential',
  certificate: 'client certificate',
};

export function decideHello(principal: AgentPrincipal, agentId: string, context: HelloContext): HelloDecision {
  const { identity } = context;
  if (principal.kind === 'agent') {
    if (principal.agentId !== agentId) {
      return { action: 'refuse', closeCode: 1008, message: `the ${PROOF[principal.via]} belongs to agent ${principal.agentId}, not to agent ${agentId}` };
    }
    if (identity?.state === 'revoked') return { action: 'refuse', closeCode: CLOSE_CODES.identityRefused, message: `agent ${agentId} is revoked; an operator must readmit it` };
    return { action: 'admit' };
  }
  if (context.hasOwnToken(agentId)) {
    return { action: 'refuse', closeCode: CLOSE_CODES.identityRefused, message: `agent ${agentId} has its own token (--agent-tokens); the enrollment token cannot claim it` };
  }
  if (identity?.state === 'enrolled') {
    return {
      action: 'refuse',
      closeCode: CLOSE_CODES.identityRefused,
      message: `agent ${agentId} is already enrolled; the enrollment token cannot claim it (an operator may revoke and readmit it to enroll again)`,
    };
  }
  if (identity?.state === 'revoked') {
    return { action: 'refuse', closeCode: CLOSE_CODES.identityRefused, message: `agent ${agentId} is revoked; it may enroll again only after an operator readmits it` };
  }
  if (context.connected) {
    return { action: 'refuse', closeCode: CLOSE_CODES.identityRefused, message: `agent ${agentId} is connected; the enrollment token cannot claim it` };
  }
  return { action: 'enroll' };
}

/** A fresh per-agent credential: 256 random bits, prefixed so it is recognisable in a secret scanner. */
export function makeCredential(): string {
  return `swc_${randomBytes(32).toString('base64url')}`;
}

/** The shape makeCredential gives: 32 bytes in base64url are 43 characters. */
const CREDENTIAL_SHAPE = /^swc_[A-Za-z0-9_-]{43}$/;

/** Whether a bearer has the shape of a credential this controller issues (not whether it is one). */
export function looksLikeCredential(token: string): boolean {
  return CREDENTIAL_SHAPE.test(token);
}
