/** HTTP routes of seeds (README, "HTTP API"): create, list, show, abort. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { MAX_LANES } from '../../shared/lanes.js';
import type { SeedMachine } from './machine.js';
import { SEED_METHOD_NAMES } from './methods/index.js';
import { THROUGHPUT_DEFAULTS, type ThroughputView } from './throughput.js';

const CreateSeedBody = z
  .object({
    source: z.string().min(1).max(128),
    target: z.string().min(1).max(128),
    method: z.enum(SEED_METHOD_NAMES).optional(),
    compression: z.enum(['none', 'gzip', 'zstd', 'auto']).optional(),
    startTarget: z.boolean().optional(),
    /** Bandwidth cap for the transfer (bytes per second), to spare a production link. */
    maxBytesPerSec: z.number().int().min(65_536).optional(),
    /** Parallel transfer lanes; the controller chooses when absent (prechecks.ts chooseLanes). */
    lanes: z.number().int().min(1).max(MAX_LANES).optional(),
  })
  .strict();

function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  const err = toSeedwireError(error);
  return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
}

export function registerSeedRoutes(app: FastifyInstance, machine: SeedMachine): void {
  app.post('/api/seeds', async (request, reply) => {
    const parsed = CreateSeedBody.safeParse(request.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'body';
      return sendError(reply, new SeedwireError('SEEDWIRE_BAD_PARAMS', `${where}: ${issue?.message ?? 'invalid'}`));
    }
    try {
      const seed = await machine.create(parsed.data, 'admin');
      return reply.code(202).send({ seed });
    } catch (error) {
      return sendError(reply, error);
    }
  });

  app.get('/api/seeds', async (request, reply) => {
    const limit = Math.min(1000, Math.max(1, Number((request.query as { limit?: string }).limit ?? 100) || 100));
    return reply.send(await machine.list(limit));
  });

  app.get<{ Params: { id: string } }>('/api/seeds/:id', async (request, reply) => {
    const seed = await machine.get(request.params.id);
    if (!seed) return sendError(reply, new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${request.params.id}`));
    return reply.send(seed);
  });

  app.get<{ Params: { id: string } }>('/api/seeds/:id/throughput', async (request, reply) => {
    const seed = await machine.get(request.params.id);
    if (!seed) return sendError(reply, new SeedwireError('SEEDWIRE_NOT_FOUND', `no seed ${request.params.id}`));
    const series = (await machine.throughput(seed.id)) ?? { intervalMs: THROUGHPUT_DEFAULTS.intervalMs, samples: [], marks: [] };
    const view: ThroughputView = { seedId: seed.id, state: seed.state, createdAt: seed.createdAt, endedAt: seed.endedAt, bytesTotal: seed.bytesTotal, ...series };
    return reply.send(view);
  });

  app.post<{ Params: { id: string } }>('/api/seeds/:id/abort', async (request, reply) => {
    try {
      const seed = await machine.abort(request.params.id, 'admin');
      return reply.send({ seed });
    } catch (error) {
      return sendError(reply, error);
    }
  });
}
