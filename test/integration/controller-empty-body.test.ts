/**
 * POST endpoints that take no body accept an empty one even when the client says
 * `Content-Type: application/json`, as curl scripts and HTTP libraries do; a body that is there
 * must still be valid JSON.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import { createSeedPlugin } from '../../server-stub/seed/plugin.js';
import type { CallFrame, CancelFrame } from '../../shared/frames.js';
import { TestPeer } from '../helpers/controller-peer.js';

const AGENT_TOKEN = 'agent-empty-body';
const ADMIN_TOKEN = 'admin-empty-body';

let controller: Controller;
let dataDir: string;
const peers: TestPeer[] = [];

/** A POST with the JSON content type and exactly `body` (possibly empty) on the wire. */
function post(path: string, body: string): Promise<Response> {
  return fetch(`${controller.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body,
  });
}

async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-empty-body-'));
  controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN, plugins: [createSeedPlugin()] });
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('empty JSON bodies', () => {
  it('cancel, abort, logout and an op without params answer as they would without a content type', async () => {
    const peer = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId: 'db-1' });
    peers.push(peer);
    await peer.connect();

    const started = await post('/api/agents/db-1/ops/exec?wait=0', JSON.stringify({ params: { command: 'sleep 100' } }));
    expect(started.status).toBe(202);
    const call = await peer.next<CallFrame>((f) => f.t === 'call');
    const canceled = await post(`/api/operations/${call.id}/cancel`, '');
    expect(canceled.status).toBe(200);
    expect(((await canceled.json()) as { operation: { state: string } }).operation.state).toBe('canceled');
    expect((await peer.next<CancelFrame>((f) => f.t === 'cancel')).id).toBe(call.id);

    // The route ran (404 for an unknown seed), rather than the body parser refusing with 400.
    const abort = await post('/api/seeds/no-such-seed/abort', '');
    expect(abort.status).toBe(404);
    expect(await errorCode(abort)).toBe('SEEDWIRE_NOT_FOUND');

    const logout = await post('/api/logout', '');
    expect(logout.status).toBe(200);
    expect(logout.headers.get('set-cookie')).toMatch(/Max-Age=0/);

    const hostname = post('/api/agents/db-1/ops/hostname', '  \n');
    const second = await peer.next<CallFrame>((f) => f.t === 'call' && f.op === 'hostname');
    expect(second.params).toEqual({});
    peer.send({ t: 'result', id: second.id, result: { hostname: 'db-1' }, durationMs: 1 });
    expect((await hostname).status).toBe(200);
  });

  it('a body that is present must still be JSON, and prototype poisoning is refused', async () => {
    const broken = await post('/api/logout', '{nope');
    expect(broken.status).toBe(400);
    expect(await errorCode(broken)).toBe('SEEDWIRE_BAD_REQUEST');
    const poisoned = await post('/api/seeds', '{"source":"a","target":"b","__proto__":{"x":1}}');
    expect(poisoned.status).toBe(400);
    expect(await errorCode(poisoned)).toBe('SEEDWIRE_BAD_REQUEST');
  });
});
