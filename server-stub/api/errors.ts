/** Every HTTP error answer: {"error":{"code":"SEEDWIRE_...","message":"..."}} with the registry's status. */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';

export function sendError(reply: FastifyReply, error: SeedwireError): FastifyReply {
  return reply.code(error.status).type('application/json; charset=utf-8').send({ error: { code: error.code, message: error.message } });
}

/** Maps fastify's own errors (body parsing, size) onto registry codes. */
function normaliseHttpError(error: unknown): SeedwireError {
  if (error instanceof SeedwireError) return error;
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new SeedwireError('SEEDWIRE_BAD_REQUEST', 'request body is larger than the limit', { cause: error });
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new SeedwireError('SEEDWIRE_BAD_REQUEST', fastifyError.message ?? 'bad request', { cause: error });
  }
  return toSeedwireError(error);
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const failure = normaliseHttpError(error);
    if (failure.status >= 500) request.log.error({ reqId: request.id, err: error, url: request.url }, 'request failed');
    return sendError(reply, failure);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new SeedwireError('SEEDWIRE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)));
}
