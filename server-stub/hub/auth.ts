/**
 * Agent authentication before the WebSocket upgrade. What a connection proves:
 * - a verified client certificate: the agent id in it (the hello must match);
 * - a per-agent token (--agent-tokens) or an enrolled credential: that one agent id;
 * - the enrollment (shared) token: nothing yet; the hello's id may enroll if it is free
 *   (decided in identity.ts once the hello names the id).
 */
import type { IdentityRow } from '../store/identities.js';
import { looksLikeCredential } from './identity.js';
import { compareSecret, readBearer } from './secret.js';

export interface AgentCredentials {
  /** The enrollment token (--agent-token); null when only per-agent tokens are used. */
  shared: string | null;
  perAgent: Readonly<Record<string, string>>;
}

export type AgentPrincipal = { kind: 'enrollment' } | { kind: 'agent'; agentId: string; via: 'token' | 'credential' | 'certificate' };

/**
 * `unknown-credential`: a bearer of a credential's shape that no identity holds. An agent gets one
 * when its enrollment was never confirmed (the connection dropped after the credential was sent);
 * it falls back to the enrollment token. Such a refusal does not count toward the address's
 * failure limit (exposure.ts): a 256-bit value is not guessed, and behind one NAT address a herd
 * of such agents would otherwise lock all its neighbours out of enrolling.
 */
export type AuthOutcome = { ok: true; principal: AgentPrincipal } | { ok: false; reason: 'missing' | 'wrong' | 'revoked' | 'unknown-credential'; message: string };

export interface AuthInput {
  authorization: string | string[] | undefined;
  /** The agent id of a client certificate the TLS layer verified against --tls-client-ca, else null. */
  certificateId: string | null;
}

export interface CredentialLookup {
  get(agentId: string): Promise<IdentityRow | null>;
  findByCredential(credential: string): Promise<IdentityRow | null>;
}

function revoked(agentId: string): AuthOutcome {
  return { ok: false, reason: 'revoked', message: `agent ${agentId} is revoked; an operator must readmit it (POST /api/agents/${agentId}/readmit)` };
}

export async function authenticateAgent(input: AuthInput, credentials: AgentCredentials, identities: CredentialLookup): Promise<AuthOutcome> {
  let principal: AgentPrincipal | null = null;
  if (input.certificateId !== null) {
    principal = { kind: 'agent', agentId: input.certificateId, via: 'certificate' };
  } else {
    const token = readBearer(input.authorization);
    if (token === null) return { ok: false, reason: 'missing', message: 'missing bearer token' };
    // Check every configured token so timing does not reveal which one matched.
    if (credentials.shared !== null && compareSecret(token, credentials.shared)) principal = { kind: 'enrollment' };
    for (const [agentId, expected] of Object.entries(credentials.perAgent)) {
      if (compareSecret(token, expected) && principal === null) principal = { kind: 'agent', agentId, via: 'token' };
    }
    if (principal === null) {
      // Credentials are random 256-bit values looked up by their hash: nothing to learn from timing.
      const identity = await identities.findByCredential(token);
      if (identity === null) {
        if (looksLikeCredential(token)) {
          return { ok: false, reason: 'unknown-credential', message: 'unknown agent credential (never issued here, or its enrollment was not confirmed); enroll again with the enrollment token' };
        }
        return { ok: false, reason: 'wrong', message: 'wrong bearer token' };
      }
      if (identity.state === 'readmitted') {
        return { ok: false, reason: 'revoked', message: `the credential of agent ${identity.agentId} was revoked; the agent was readmitted and may enroll again with the enrollment token` };
      }
      if (identity.state !== 'enrolled') return revoked(identity.agentId);
      principal = { kind: 'agent', agentId: identity.agentId, via: 'credential' };
    }
  }
  if (principal.kind === 'agent' && (await identities.get(principal.agentId))?.state === 'revoked') return revoked(principal.agentId);
  return { ok: true, principal };
}
