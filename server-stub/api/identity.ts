/** POST /api/agents/:id/revoke and /readmit: an operator's control over which hosts may be an agent id. */
import type { FastifyInstance } from 'fastify';
import { toSeedwireError } from '../../shared/errors.js';
import type { ControllerHub } from '../hub/hub.js';
import type { Audit } from '../types.js';

export interface IdentityRouteDeps {
  hub: Pick<ControllerHub, 'revoke' | 'readmit'>;
  audit: Audit;
  /** Cluster mode: the revoked agent's session may be on another controller, which is told to end it. */
  announceRevoked?: (agentId: string) => void;
}

export function registerIdentityRoutes(app: FastifyInstance, deps: IdentityRouteDeps): void {
  const { hub, audit } = deps;
  for (const action of ['revoke', 'readmit'] as const) {
    app.post<{ Params: { id: string } }>(`/api/agents/:id/${action}`, async (request) => {
      const agentId = request.params.id;
      try {
        const identity = await hub[action](agentId);
        if (action === 'revoke') deps.announceRevoked?.(agentId);
        await audit.record({ actor: 'admin', agentId, action: `agent:${action}`, outcome: 'succeeded', params: { state: identity.state } });
        return { agentId, identity };
      } catch (error) {
        const failure = toSeedwireError(error);
        await audit.record({ actor: 'admin', agentId, action: `agent:${action}`, outcome: 'refused', message: `${failure.code}: ${failure.message}` });
        throw failure;
      }
    });
  }
}
