/** GET /api/operations, GET /api/operations/:id, its output, POST .../cancel. */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { SeedwireError } from '../../shared/errors.js';
import type { SeedwireEventBus } from '../events/bus.js';
import { CONTROLLER_LIMITS } from '../limits.js';
import type { OutputStore } from '../store/output.js';
import type { ControllerDeps } from '../types.js';
import type { Operation } from '../ops/types.js';
import type { RemoteOutput } from '../cluster/routed.js';


export interface OutputFollowers {
  closeAll(): void;
}

/** Where a follower's output comes from: this controller's bus, or a routed operation's mirror (cluster mode). */
interface OutputSource {
  /** The output stored so far, and its length in bytes (a later chunk's `end` at or below it is already in the text). */
  readStored(): Promise<{ text: string; bytes: number }>;
  /** Calls onData for each later chunk (with its end offset when known) and onEnd once the operation ended; returns the unsubscribe. */
  subscribe(onData: (text: string, end: number) => void, onEnd: () => void): () => void;
}

function localSource(bus: SeedwireEventBus, output: OutputStore, operationId: string): OutputSource {
  return {
    readStored: () => output.readStored(operationId),
    subscribe: (onData, onEnd) =>
      bus.subscribe((event) => {
        const data = event.data as { operationId?: string; id?: string; state?: string; data?: string; end?: number };
        if (event.type === 'output' && data.operationId === operationId && typeof data.data === 'string') {
          onData(data.data, typeof data.end === 'number' ? data.end : Number.POSITIVE_INFINITY);
        } else if (event.type === 'operation' && data.id === operationId && data.state !== 'running') onEnd();
      }),
  };
}

/** A routed operation's mirror: its text so far, then every later chunk (none of them is in the text). */
function remoteSource(remote: RemoteOutput): OutputSource {
  return {
    readStored: () => Promise.resolve({ text: remote.text, bytes: 0 }),
    subscribe: (onData, onEnd) => remote.follow({ onData: (text) => onData(text, Number.POSITIVE_INFINITY), onEnd }),
  };
}

function followOutput(res: ServerResponse, source: OutputSource, onEnd: () => void): { stop: () => void; started: Promise<void> } {
  let skipped = 0;
  let ended = false;
  let unsubscribe: () => void = () => undefined;
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
  const read = source.readStored();
  unsubscribe = source.subscribe(
    (text, end) => {
      if (pending) pending.push({ end, text });
      else if (end > storedBytes) write(text);
    },
    () => {
      if (pending) endedEarly = true;
      else finish();
    },
  );
  // A source that replayed its end during subscribe finished before unsubscribe was known.
  if (ended) unsubscribe();
  res.on('close', finish);
  const started = read.then(
    (stored) => {
      if (ended) return;
      storedBytes = stored.bytes;
      res.write(stored.text);
      for (const chunk of pending ?? []) if (chunk.end > storedBytes) write(chunk.text);
      pending = null;
      if (endedEarly) finish();
    },
    () => finish(),
  );
  return { stop: finish, started };
}

/**
 * `fleet`: cluster mode's fleet bus (every controller's events). Followers of an operation this
 * controller's store has read it: with a shared store (PostgreSQL) the row and its output may be
 * another controller's, whose chunks only the fleet bus carries (with their stored `end`, so the
 * dedupe against the stored text holds); this controller's own events are on it too.
 */
export function registerOperationRoutes(app: FastifyInstance, deps: ControllerDeps, bus: SeedwireEventBus, output: OutputStore, fleet: SeedwireEventBus | null = null): OutputFollowers {
  const { operations } = deps;
  const followers = new Set<() => void>();

  async function mustGet(id: string): Promise<Operation> {
    const operation = await operations.get(id);
    if (!operation) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no operation ${id}`);
    return operation;
  }

  /** Cluster mode: an operation this controller's store does not have was routed from here, or another controller has it. */
  async function mustFind(id: string): Promise<Operation> {
    const found = (await operations.get(id)) ?? deps.cluster?.routed.get(id) ?? (await deps.cluster?.lookup.find(id, false))?.operation;
    if (!found) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no operation ${id}`);
    return found;
  }

  // ?seed=ID lists that seed's steps in the order they ran; otherwise newest first.
  app.get<{ Querystring: { agent?: string; seed?: string; limit?: string } }>('/api/operations', async (request) => {
    const limit = request.query.limit === undefined ? 100 : Number.parseInt(request.query.limit, 10);
    if (!Number.isFinite(limit) || limit < 1) throw new SeedwireError('SEEDWIRE_BAD_REQUEST', 'limit: a positive integer');
    const { agent, seed } = request.query;
    return operations.list({ ...(agent ? { agentId: agent } : {}), ...(seed ? { seedId: seed } : {}), limit });
  });

  app.get<{ Params: { id: string } }>('/api/operations/:id', async (request) => mustFind(request.params.id));

  app.get<{ Params: { id: string }; Querystring: { follow?: string } }>('/api/operations/:id/output', async (request, reply) => {
    const follow = request.query.follow !== '0' && request.query.follow !== 'false';
    const id = request.params.id;
    const local = await operations.get(id);
    let remote: RemoteOutput | null = null;
    if (local === null) {
      // Cluster mode: routed from here (its mirror), or another controller's (followed from the fleet's events).
      const cluster = deps.cluster;
      remote = !cluster ? null : (cluster.routed.output(id) ?? (await cluster.lookup.openOutput(id)));
      if (remote === null) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no operation ${id}`);
    }
    const running = local ? local.state === 'running' : remote!.running;
    if (!follow || !running) {
      remote?.close();
      return reply.type('text/plain; charset=utf-8').send(local ? await output.readText(local.id) : remote!.text);
    }
    const source: OutputSource = local ? localSource(fleet ?? bus, output, local.id) : remoteSource(remote!);
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    const { stop, started } = followOutput(reply.raw, source, () => followers.delete(stop));
    followers.add(stop);
    await started;
    // It may have ended between the first read and the subscription.
    if (local && (await operations.get(local.id))?.state !== 'running') stop();
    return reply;
  });

  app.post<{ Params: { id: string } }>('/api/operations/:id/cancel', async (request) => {
    const cluster = deps.cluster;
    const stored = cluster ? await operations.get(request.params.id) : null;
    // Cluster mode: not in this store, or (a shared store) running on an agent another controller holds.
    if (cluster && (stored === null || (stored.state === 'running' && !deps.hub.isConnected(stored.agentId)))) {
      // Routed from here: through its holder; otherwise whichever controller runs it.
      const routed = await cluster.routed.cancel(request.params.id, 'canceled by admin');
      if (routed !== null) return { operation: routed.state === 'running' ? await cluster.routed.wait(routed.id, 5_000) : routed };
      const remote = await cluster.lookup.cancel(request.params.id, 'canceled by admin');
      if (remote !== null) return { operation: remote };
      // No controller holds its agent: as on one controller, it is ended here (the agent is not told).
      if (stored === null) throw new SeedwireError('SEEDWIRE_NOT_FOUND', `no operation ${request.params.id}`);
    }
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
