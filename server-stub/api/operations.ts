/** GET /api/operations, GET /api/operations/:id, its output, POST .../cancel. */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { SeedwireError } from '../../shared/errors.js';
import type { SeedwireEventBus } from '../events/bus.js';
import { CONTROLLER_LIMITS } from '../limits.js';
import type { OutputStore } from '../store/output.js';
import type { ControllerDeps } from '../types.js';
import type { Operation } from '../ops/types.js';


export interface OutputFollowers {
  closeAll(): void;
}

function followOutput(res: ServerResponse, bus: SeedwireEventBus, output: OutputStore, operationId: string, onEnd: () => void): { stop: () => void; started: Promise<void> } {
  let skipped = 0;
  let ended = false;
  const finish = (): void => {
    if (ended) return;
    ended = true;
    unsubscribe();
    if (!res.writableEnded) res.end();
    onEnd();
  };
  const write = (text: string): void => {
    if (res.writableLength > CONTROLLER_LIMITS.followHighWaterBytes) {
      skipped += Buffer.byteLength(text);
      return;
    }
    if (skipped > 0) {
      res.write(`\n[seedwire: ${skipped} bytes skipped for this slow reader; GET ?follow=0 for the stored output]\n`);
      skipped = 0;
    }
    res.write(text);
  };
  // Subscribed before the stored output is read, so nothing falls between the two: what arrives
  // meanwhile waits, and a chunk the read already holds (its `end` within it) is dropped.
  let pending: Array<{ end: number; text: string }> | null = [];
  let storedBytes = 0;
  let endedEarly = false;
  const unsubscribe = bus.subscribe((event) => {
    const data = event.data as { operationId?: string; id?: string; state?: string; data?: string; end?: number };
    if (event.type === 'output' && data.operationId === operationId && typeof data.data === 'string') {
      const end = typeof data.end === 'number' ? data.end : Number.POSITIVE_INFINITY;
      if (pending) pending.push({ end, text: data.data });
      else if (end > storedBytes) write(data.data);
    } else if (event.type === 'operation' && data.id === operationId && data.state !== 'running') {
      if (pending) endedEarly = true;
      else finish();
    }
  });
  res.on('close', finish);
  const started = output.readStored(operationId).then(
    ({ text, bytes }) => {
      if (ended) return;
      storedBytes = bytes;
      res.write(text);
      for (const chunk of pending ?? []) if (chunk.end > storedBytes) write(chunk.text);
      pending = null;
      if (endedEarly) finish();
    },
    () => finish(),
  );
  return { stop: finish, started };
}

export function registerOperationRoutes(app: FastifyInstance, deps: ControllerDeps, bus: SeedwireEventBus, output: OutputStore): OutputFollowers {
  const { operations } = deps;
  const followers = new Set<() => void>();

  async function mustGet(id: string): Promise<Operation> {
    const operation = await operations.get(id);
    if (!operation) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no operation ${id}`);
    return operation;
  }

  // ?seed=ID lists that seed's steps in the order they ran; otherwise newest first.
  app.get<{ Querystring: { agent?: string; seed?: string; limit?: string } }>('/api/operations', async (request) => {
    const limit = request.query.limit === undefined ? 100 : Number.parseInt(request.query.limit, 10);
    if (!Number.isFinite(limit) || limit < 1) throw new SeedwireError('SEEDWIRE_BAD_REQUEST', 'limit: a positive integer');
    const { agent, seed } = request.query;
    return operations.list({ ...(agent ? { agentId: agent } : {}), ...(seed ? { seedId: seed } : {}), limit });
  });

  app.get<{ Params: { id: string } }>('/api/operations/:id', async (request) => mustGet(request.params.id));

  app.get<{ Params: { id: string }; Querystring: { follow?: string } }>('/api/operations/:id/output', async (request, reply) => {
    const operation = await mustGet(request.params.id);
    const follow = request.query.follow !== '0' && request.query.follow !== 'false';
    if (!follow || operation.state !== 'running') {
      return reply.type('text/plain; charset=utf-8').send(await output.readText(operation.id));
    }
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    const { stop, started } = followOutput(reply.raw, bus, output, operation.id, () => followers.delete(stop));
    followers.add(stop);
    await started;
    // It may have ended between the first read and the subscription.
    if ((await operations.get(operation.id))?.state !== 'running') stop();
    return reply;
  });

  app.post<{ Params: { id: string } }>('/api/operations/:id/cancel', async (request) => {
    const operation = await mustGet(request.params.id);
    if (operation.state !== 'running') return { operation };
    await deps.audit.record({ actor: 'admin', agentId: operation.agentId, action: 'cancel', params: { operationId: operation.id }, outcome: 'requested' });
    await operations.cancel(operation.id, 'canceled by admin');
    return { operation: await operations.wait(operation.id, 5_000) };
  });

  return {
    closeAll() {
      for (const stop of [...followers]) stop();
    },
  };
}
