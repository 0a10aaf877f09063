/** GET /api/agents, GET /api/agents/:id, POST /api/agents/:id/ops/:op. */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { ControllerDeps } from '../types.js';
import { validateOp } from '../ops/validate.js';
import { listAgentViews, viewAgentDetail, type FleetPresence } from './views.js';

const MAX_WAIT_SECONDS = 3600;

export function parseWaitSeconds(value: unknown): number {
  if (value === undefined) return 60;
  if (typeof value !== 'string' || !/^\d+(\.\d+)?$/.test(value)) throw new SeedwireError('SEEDWIRE_BAD_REQUEST', 'wait: a number of seconds');
  return Math.min(Number(value), MAX_WAIT_SECONDS);
}

function readParams(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new SeedwireError('SEEDWIRE_BAD_REQUEST', 'body: a JSON object {"params":{...}}');
  const params = (body as { params?: unknown }).params;
  if (params === undefined) return {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new SeedwireError('SEEDWIRE_BAD_PARAMS', 'params: an object');
  return params as Record<string, unknown>;
}

/**
 * An AbortSignal that fires when the client goes away before the answer (the response's socket
 * closes). A response also emits 'close' after it was sent: that is not the client going away,
 * and aborting then only cost a DOMException per operation (1% of a controller's busy time).
 */
function signalOfClient(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export function registerAgentRoutes(app: FastifyInstance, deps: ControllerDeps): void {
  const { hub, operations, audit } = deps;

  /** Cluster mode: the sessions other controllers hold, so this controller shows the whole fleet. */
  async function fleetPresence(): Promise<FleetPresence | null> {
    const cluster = deps.cluster;
    if (!cluster) return null;
    return { self: cluster.advertiseUrl, remote: await cluster.presence.remote() };
  }

  app.get('/api/agents', async () => listAgentViews(hub, await fleetPresence()));

  app.get<{ Params: { id: string } }>('/api/agents/:id', async (request) => {
    const detail = await viewAgentDetail(hub, request.params.id, await fleetPresence(), async (id) => (await deps.store.agents.get(id))?.facts ?? null);
    if (!detail) throw new SeedwireError('SEEDWIRE_AGENT_UNKNOWN', `no agent ${request.params.id} has ever connected`);
    return detail;
  });

  app.post<{ Params: { id: string; op: string }; Querystring: { wait?: string } }>('/api/agents/:id/ops/:op', async (request, reply) => {
    const { id, op } = request.params;
    let started;
    try {
      const waitSeconds = parseWaitSeconds(request.query.wait);
      // Public operations only: the internal seed-* operations belong to the seed machine.
      const valid = validateOp(op, readParams(request.body), true);
      // Cluster mode: an agent this controller does not hold is run by the controller that does.
      const routed = deps.cluster && !hub.isConnected(id) ? deps.cluster.routed : null;
      started = routed ? await routed.start(id, valid.op, valid.params, 'admin') : await operations.start(id, valid.op, valid.params, { actor: 'admin' });
      if (waitSeconds === 0) return reply.code(202).send({ operation: started.operation });
      // Ended already (a routed quick operation comes back ended): nothing to wait for.
      const operation = started.operation.state === 'running' ? await (routed ?? operations).wait(started.operation.id, waitSeconds * 1000, signalOfClient(reply)) : started.operation;
      return reply.code(200).send({ operation });
    } catch (error) {
      const failure = toSeedwireError(error);
      if (!started) await audit.record({ actor: 'admin', agentId: id, action: `op:${op}`, outcome: 'refused', message: `${failure.code}: ${failure.message}` });
      throw failure;
    }
  });
}
