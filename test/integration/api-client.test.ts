/**
 * The typed API client against the real controller in-process on port 0, with a real `ws` peer
 * speaking the agent side: every call answers with the controller's own shapes, live output and
 * events stream as they happen, and failures are ApiErrors with the API's code and status.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient, ApiError, type BusEvent } from '../../client/api.js';
import { createController, type Controller } from '../../server-stub/app.js';
import { createSeedPlugin } from '../../server-stub/seed/plugin.js';
import type { CallFrame, CancelFrame } from '../../shared/frames.js';
import pino from 'pino';
import { TestPeer } from '../helpers/controller-peer.js';

const AGENT_TOKEN = 'client-agent-token';
const ADMIN_TOKEN = 'client-admin-token';

let controller: Controller;
let dataDir: string;
let client: ApiClient;
/** The controller's log lines. */
const logLines: string[] = [];
const peers: TestPeer[] = [];

beforeEach(async () => {
  logLines.length = 0;
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-client-'));
  controller = await createController({ log: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }), dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, plugins: [createSeedPlugin()] });
  client = new ApiClient({ baseUrl: `${controller.url}/`, token: ADMIN_TOKEN });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function connectPeer(agentId: string): Promise<TestPeer> {
  const peer = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId });
  peers.push(peer);
  await peer.connect();
  return peer;
}

async function caught(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected an ApiError');
}

describe('ApiClient', () => {
  it('lists and shows agents, runs an operation with wait, and lists operations', async () => {
    const peer = await connectPeer('db-1');
    expect((await client.agents()).map((a) => a.id)).toEqual(['db-1']);
    const detail = await client.agent('db-1');
    expect(detail).toMatchObject({ id: 'db-1', connected: true, peers: { local: [], remote: [] } });

    const running = client.runOp('db-1', 'hostname');
    const call = await peer.next<CallFrame>((f) => f.t === 'call');
    peer.send({ t: 'result', id: call.id, result: { hostname: 'db-1' }, durationMs: 1 });
    expect(await running).toMatchObject({ id: call.id, state: 'succeeded', result: { hostname: 'db-1' } });
    expect((await client.operations({ agent: 'db-1' })).map((o) => o.id)).toEqual([call.id]);
    expect(await client.operation(call.id)).toMatchObject({ op: 'hostname', state: 'succeeded' });
  });

  it('streams output live, cancels, and reads the stored output', async () => {
    const peer = await connectPeer('db-1');
    const started = await client.runOp('db-1', 'exec', { command: 'sleep 100' }, { wait: 0 });
    expect(started.state).toBe('running');
    const call = await peer.next<CallFrame>((f) => f.t === 'call');
    const chunks: string[] = [];
    const iterator = client.output(started.id)[Symbol.asyncIterator]();
    peer.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'first\n' });
    // The first chunk arrives while the operation is still running.
    const first = await iterator.next();
    chunks.push(String(first.value));
    expect(chunks.join('')).toBe('first\n');
    expect((await client.operation(started.id)).state).toBe('running');

    const canceled = client.cancel(started.id);
    expect((await peer.next<CancelFrame>((f) => f.t === 'cancel')).id).toBe(call.id);
    expect((await canceled).state).toBe('canceled');
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) chunks.push(next.value);
    expect(chunks.join('')).toBe('first\n');
    expect(await client.outputText(started.id)).toBe('first\n');
  });

  it('parses the event feed and resumes after a sequence number', async () => {
    const abort = new AbortController();
    const seen: BusEvent[] = [];
    const reading = (async () => {
      try {
        for await (const event of client.events({ lastEventId: 0, signal: abort.signal })) {
          seen.push(event);
          if (event.type === 'agent' && (event.data as { id?: string }).id === 'db-2') abort.abort();
        }
      } catch (error) {
        if (!abort.signal.aborted) throw error;
      }
    })();
    // From sequence 0, so the agent's event is seen whether it comes before or after the feed opens.
    await connectPeer('db-2');
    await reading;
    const agentEvent = seen.find((e) => e.type === 'agent')!;
    expect(agentEvent).toMatchObject({ type: 'agent', data: { id: 'db-2' } });
    expect(typeof agentEvent.seq).toBe('number');

    // Resume from before that event: the bus replays it.
    const replay = new AbortController();
    let replayed: BusEvent | undefined;
    try {
      for await (const event of client.events({ lastEventId: agentEvent.seq - 1, signal: replay.signal })) {
        replayed = event;
        replay.abort();
      }
    } catch (error) {
      if (!replay.signal.aborted) throw error;
    }
    expect(replayed?.seq).toBe(agentEvent.seq);
  });

  it('seeds and audit: lists, a 409 refusal with its reason, a 404, all as ApiErrors', async () => {
    expect(await client.seeds()).toEqual([]);
    const refused = await caught(client.createSeed({ source: 'ghost', target: 'other', lanes: 4 }));
    expect(refused).toMatchObject({ httpStatus: 409, code: 'SEEDWIRE_PRECHECK_FAILED', apiCode: 'SEEDWIRE_PRECHECK_FAILED' });
    expect(refused.message).toContain('source agent ghost is unknown');
    const missing = await caught(client.abortSeed('nope'));
    expect(missing).toMatchObject({ httpStatus: 404, code: 'SEEDWIRE_NOT_FOUND' });
    const bad = await caught(client.createSeed({ source: 'a', target: 'b', lanes: 0 }));
    expect(bad).toMatchObject({ httpStatus: 400, code: 'SEEDWIRE_BAD_PARAMS' });
    expect(bad.message).toContain('lanes');
    expect((await client.audit({ limit: 5 })).length).toBeGreaterThan(0);
    expect(await client.raw('GET', '/api/seeds/nope')).toMatchObject({ status: 404, body: { error: { code: 'SEEDWIRE_NOT_FOUND' } } });
  });

  it('a wrong token is SEEDWIRE_AUTH (401), logged with the request id and never the token; no controller is SEEDWIRE_UNREACHABLE (status 0)', async () => {
    const wrong = new ApiClient({ baseUrl: controller.url, token: 'not-the-admin-token-7f3a' });
    expect(await caught(wrong.agents())).toMatchObject({ httpStatus: 401, code: 'SEEDWIRE_AUTH' });
    const refusal = logLines.map((line) => JSON.parse(line) as Record<string, unknown>).find((r) => r['msg'] === 'admin request refused: missing or wrong token');
    expect(refusal).toMatchObject({ component: 'http', path: '/api/agents', method: 'GET', reqId: expect.any(String) });
    expect(logLines.join('\n')).not.toContain('not-the-admin-token-7f3a');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const down = await caught(new ApiClient({ baseUrl: `http://127.0.0.1:${port}`, token: 'x' }).agents());
    expect(down).toMatchObject({ httpStatus: 0, code: 'SEEDWIRE_UNREACHABLE', unreachable: true });
    expect(down.message).toContain('ECONNREFUSED');
  });
});
