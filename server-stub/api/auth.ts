/**
 * Admin authentication for /api/* and /metrics: `Authorization: Bearer <token>`, or the
 * `seedwire_admin` cookie set by POST /api/login (EventSource cannot send headers). Tokens in the
 * URL are never read.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SeedwireError } from '../../shared/errors.js';
import { readBearer, secretMatcher } from '../hub/secret.js';
import { sendError } from './errors.js';

export const ADMIN_COOKIE = 'seedwire_admin';

/** Paths that need no admin token. */
const PUBLIC_PATHS = new Set(['/healthz', '/api/login', '/api/logout']);

export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return null;
    }
  }
  return null;
}

/** `isAdminToken`: a secretMatcher of the admin token. */
export function isAdmin(request: FastifyRequest, isAdminToken: (presented: string) => boolean): boolean {
  const presented = readBearer(request.headers.authorization) ?? readCookie(request.headers.cookie, ADMIN_COOKIE);
  return presented !== null && isAdminToken(presented);
}

function needsAuth(path: string): boolean {
  if (PUBLIC_PATHS.has(path)) return false;
  return path === '/api' || path.startsWith('/api/') || path === '/metrics';
}

export function installAdminAuth(app: FastifyInstance, adminToken: string): void {
  const matches = secretMatcher(adminToken);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    if (!needsAuth(path)) return;
    if (isAdmin(request, matches)) return;
    request.log.info({ reqId: request.id, path, method: request.method }, 'admin request refused: missing or wrong token');
    return sendError(reply, new SeedwireError('SEEDWIRE_AUTH', 'missing or wrong admin bearer token'));
  });
}
