/**
 * Agent authentication before the WebSocket upgrade: the shared token, or a per-agent token (then
 * the agent's hello must carry the id the token belongs to).
 */
import { compareSecret, readBearer } from './secret.js';

export interface AgentCredentials {
  shared: string | null;
  perAgent: Readonly<Record<string, string>>;
}

/** Who a token proves to be: any agent (shared token) or one agent id. */
export type AgentPrincipal = { kind: 'shared' } | { kind: 'agent'; agentId: string };

export function authenticateAgent(authorization: string | string[] | undefined, credentials: AgentCredentials): AgentPrincipal | null {
  const token = readBearer(authorization);
  if (token === null) return null;
  let principal: AgentPrincipal | null = null;
  // Check every candidate so timing does not reveal which one matched.
  if (credentials.shared !== null && compareSecret(token, credentials.shared)) principal = { kind: 'shared' };
  for (const [agentId, expected] of Object.entries(credentials.perAgent)) {
    if (compareSecret(token, expected) && principal === null) principal = { kind: 'agent', agentId };
  }
  return principal;
}
