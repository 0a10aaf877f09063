/**
 * JSON request bodies. Common HTTP clients send `Content-Type: application/json` on every POST,
 * even those that carry no body (cancel, abort, logout); fastify's own parser answers those with
 * 400 "Body cannot be empty". An empty body is read as no body; anything else goes through
 * fastify's parser unchanged (prototype-poisoning checks included).
 */
import type { FastifyInstance } from 'fastify';

export function acceptEmptyJsonBodies(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    // Synchronous (it calls done); typed as possibly async.
    void parseJson(request, text, done);
  });
}
