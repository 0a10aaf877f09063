/** SSE, cookie login and the stream relay, against the controller in-process on port 0. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createController, type Controller } from '../../server-stub/app.js';
import { decodeDataFrame, encodeDataFrame } from '../../shared/codec.js';
import type { CallFrame, CreditFrame } from '../../shared/frames.js';
import { TestPeer } from '../helpers/controller-peer.js';

const AGENT_TOKEN = 'agent-secret-token';
const ADMIN_TOKEN = 'admin-secret-token';
let controller: Controller;
let dataDir: string;
const peers: TestPeer[] = [];
const aborts: AbortController[] = [];

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-events-'));
  controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN });
});

afterEach(async () => {
  for (const a of aborts.splice(0)) a.abort();
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function connectPeer(agentId: string): Promise<TestPeer> {
  const p = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId });
  peers.push(p);
  await p.connect();
  return p;
}

/** Reads SSE events from a fetch body until `count` events (not comments) arrived. */
async function readEvents(res: Response, count: number): Promise<Array<{ id: string; event: string; data: { seq: number; type: string; data: Record<string, unknown> } }>> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const events: Array<{ id: string; event: string; data: { seq: number; type: string; data: Record<string, unknown> } }> = [];
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let sep: number;
    while ((sep = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
      if (fields['data']) events.push({ id: fields['id']!, event: fields['event']!, data: JSON.parse(fields['data']) });
    }
  }
  reader.releaseLock();
  return events.slice(0, count);
}

describe('GET /api/events', () => {
  it('needs the admin token (header or login cookie), never a URL token', async () => {
    expect((await fetch(`${controller.url}/api/events`)).status).toBe(401);
    expect((await fetch(`${controller.url}/api/events?token=${ADMIN_TOKEN}`)).status).toBe(401);
    expect((await fetch(`${controller.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token":"nope"}' })).status).toBe(401);
    const login = await fetch(`${controller.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: ADMIN_TOKEN }) });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^seedwire_admin=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const abort = new AbortController();
    aborts.push(abort);
    const res = await fetch(`${controller.url}/api/events`, { headers: { cookie: cookie.split(';')[0]! }, signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const logout = await fetch(`${controller.url}/api/logout`, { method: 'POST' });
    expect(logout.headers.get('set-cookie')).toMatch(/Max-Age=0/);
  });

  it('streams agent, operation and output events with ids and resumes from Last-Event-ID', async () => {
    const abort = new AbortController();
    aborts.push(abort);
    const res = await fetch(`${controller.url}/api/events`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: abort.signal });
    const p = await connectPeer('db-1');
    const op = fetch(`${controller.url}/api/agents/db-1/ops/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ params: { command: 'x' } }),
    });
    const call = await p.next<CallFrame>((f) => f.t === 'call');
    p.send({ t: 'output', id: call.id, seq: 0, stream: 'stdout', data: 'out\n' });
    p.send({ t: 'result', id: call.id, result: { exitCode: 0 }, exitCode: 0, durationMs: 1 });
    await op;
    const events = await readEvents(res, 6);
    const types = events.map((e) => e.event);
    expect(types[0]).toBe('agent');
    expect(types).toEqual(expect.arrayContaining(['agent', 'operation', 'audit', 'output']));
    const output = events.find((e) => e.event === 'output')!;
    expect(output.data.data).toMatchObject({ operationId: call.id, stream: 'stdout', data: 'out\n' });
    for (const e of events) expect(Number(e.id)).toBe(e.data.seq);

    const cursor = events[2]!.data.seq;
    const resumed = await fetch(`${controller.url}/api/events`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'last-event-id': String(cursor) }, signal: abort.signal });
    const replay = await readEvents(resumed, 2);
    expect(replay.map((e) => e.data.seq)).toEqual([cursor + 1, cursor + 2]);
    expect(replay[0]).toEqual(events[3]);
  });
});

describe('stream relay', () => {
  it('forwards data frames untouched from source to target and credit back', async () => {
    const source = await connectPeer('src');
    const target = await connectPeer('dst');
    const relay = controller.deps.hub.relay;
    const stream = relay.allocate();
    relay.open(stream, { from: 'src', to: 'dst' });
    const credit = relay.waitForCredit(stream, 0);
    target.send({ t: 'credit', stream, limit: 4096 });
    expect(await source.next<CreditFrame>((f) => f.t === 'credit')).toEqual({ t: 'credit', stream, limit: 4096 });
    expect(await credit).toBe(4096);
    expect(relay.creditLimit(stream)).toBe(4096);

    const payload = Buffer.from('hello seed bytes');
    const frame = encodeDataFrame({ stream, offset: 0, rawLength: payload.length, codec: 'none', payload });
    const got = new Promise<Buffer>((resolve) => target.ws.once('message', (data, isBinary) => isBinary && resolve(data as Buffer)));
    source.sendRaw(frame);
    const received = await got;
    expect(received.equals(frame)).toBe(true);
    expect(decodeDataFrame(received).payload.toString()).toBe('hello seed bytes');
    expect(relay.bytesRelayed(stream)).toBe(frame.length);

    // Data for an unrouted stream is dropped, not forwarded; a short binary frame is a bad frame.
    source.sendRaw(encodeDataFrame({ stream: stream + 100, offset: 0, rawLength: 1, codec: 'none', payload: Buffer.from('x') }));
    source.sendRaw(Buffer.from([1, 2, 3]));
    expect((await source.next((f) => f.t === 'error')) as unknown).toMatchObject({ code: 'SEEDWIRE_BAD_FRAME' });
    relay.close(stream);
    await expect(relay.waitForCredit(stream, 0)).rejects.toMatchObject({ code: 'SEEDWIRE_NOT_FOUND' });
    expect(relay.bytesRelayed(stream)).toBe(frame.length);
  });

  it('a grant made while the sender was offline reaches it when it connects', async () => {
    const target = await connectPeer('dst2');
    const relay = controller.deps.hub.relay;
    const stream = relay.allocate();
    relay.open(stream, { from: 'src2', to: 'dst2' });
    const credit = relay.waitForCredit(stream, 0);
    target.send({ t: 'credit', stream, limit: 8192 });
    expect(await credit).toBe(8192); // the relay holds it; there was no session to forward it to
    const source = await connectPeer('src2');
    expect(await source.next<CreditFrame>((f) => f.t === 'credit')).toEqual({ t: 'credit', stream, limit: 8192 });
    relay.close(stream);
  });
});
