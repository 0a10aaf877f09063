/** /healthz, GET /api/audit, POST /api/login, POST /api/logout. */
import type { FastifyInstance } from 'fastify';
import { SeedwireError } from '../../shared/errors.js';
import { compareSecret } from '../hub/secret.js';
import type { ControllerDeps } from '../types.js';
import { ADMIN_COOKIE } from './auth.js';

function cookieAttributes(secure: boolean): string {
  return `Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function registerMiscRoutes(app: FastifyInstance, deps: ControllerDeps): void {
  const secure = deps.config.tls !== null;

  app.get('/healthz', async () => ({ ok: true }));

  app.get<{ Querystring: { limit?: string } }>('/api/audit', async (request) => {
    const limit = request.query.limit === undefined ? 100 : Number.parseInt(request.query.limit, 10);
    if (!Number.isFinite(limit) || limit < 1) throw new SeedwireError('SEEDWIRE_BAD_REQUEST', 'limit: a positive integer');
    return deps.audit.list(Math.min(limit, 10_000));
  });

  app.post('/api/login', async (request, reply) => {
    const token = (request.body as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string' || !compareSecret(token, deps.config.adminToken)) {
      await deps.audit.record({ actor: 'anonymous', action: 'login', outcome: 'refused' });
      throw new SeedwireError('SEEDWIRE_AUTH', 'wrong admin token');
    }
    await deps.audit.record({ actor: 'admin', action: 'login', outcome: 'succeeded' });
    return reply.header('set-cookie', `${ADMIN_COOKIE}=${encodeURIComponent(token)}; ${cookieAttributes(secure)}`).send({ ok: true });
  });

  app.post('/api/logout', async (_request, reply) =>
    reply.header('set-cookie', `${ADMIN_COOKIE}=; Max-Age=0; ${cookieAttributes(secure)}`).send({ ok: true }),
  );
}
