/** The console's WebSocket feed (/api/events/ws) against the controller in-process on port 0, with real ws clients. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createController, type Controller } from '../../server-stub/app.js';
import type { SeedwireEventBus } from '../../server-stub/events/bus.js';
import { checkOrigin } from '../../server-stub/events/ws.js';
import { Waitable } from '../helpers/wait.js';

const AGENT_TOKEN = 'agent-secret-token';
const ADMIN_TOKEN = 'admin-secret-token';
let controller: Controller;
let dataDir: string;
const sockets: WebSocket[] = [];

interface Message {
  type: string;
  seq?: number;
  epoch?: string;
  lastSeq?: number;
  resumed?: boolean;
  data?: { from?: number; to?: number; i?: number; pad?: string };
}

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-events-ws-'));
  controller = await createController({ dataDir, adminToken: ADMIN_TOKEN, agentToken: AGENT_TOKEN });
});

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function feedUrl(): string {
  return `${controller.url.replace(/^http/, 'ws')}/api/events/ws`;
}

function bus(): SeedwireEventBus {
  return controller.deps.bus as SeedwireEventBus;
}

/** Connects; resolves with the socket and its messages, or rejects with the refusal's HTTP status. */
function connect(headers: Record<string, string>, url = feedUrl()): Promise<{ ws: WebSocket; messages: Waitable<Message> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    sockets.push(ws);
    const messages = new Waitable<Message>();
    ws.on('message', (data) => messages.push(JSON.parse(String(data)) as Message));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

const bearer = { authorization: `Bearer ${ADMIN_TOKEN}` };

describe('GET /api/events/ws', () => {
  it('refuses without the admin token, with a token in the URL, and from a foreign Origin', async () => {
    await expect(connect({})).rejects.toMatchObject({ status: 401 });
    await expect(connect({}, `${feedUrl()}?token=${ADMIN_TOKEN}`)).rejects.toMatchObject({ status: 401 });
    await expect(connect({ cookie: 'seedwire_admin=wrong' })).rejects.toMatchObject({ status: 401 });
    await expect(connect({ ...bearer, origin: 'https://evil.example' })).rejects.toMatchObject({ status: 403 });
    const host = new URL(controller.url).host;
    const { ws } = await connect({ cookie: `seedwire_admin=${ADMIN_TOKEN}`, origin: `http://${host}` });
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(checkOrigin(undefined, host)).toBeNull();
    expect(checkOrigin('null', host)).toMatch(/not a URL/);
  });

  it('greets with its epoch, streams live events, and closes on a bad hello', async () => {
    const { ws, messages } = await connect(bearer);
    ws.send(JSON.stringify({ type: 'hello' }));
    const hello = await messages.waitFor((m) => m.type === 'hello');
    expect(hello).toMatchObject({ epoch: bus().epoch, resumed: false });
    const published = bus().publish('audit', { i: 1 });
    const got = await messages.waitFor((m) => m.type === 'audit');
    expect(got).toMatchObject({ seq: published.seq, data: { i: 1 } });

    const bad = await connect(bearer);
    const closed = new Promise<number>((resolve) => bad.ws.once('close', (code) => resolve(code)));
    bad.ws.send(JSON.stringify({ type: 'hello', since: -1 }));
    expect(await closed).toBe(1008);
  });

  it('resumes from the cursor in the hello, gives a gap for what fell out of the ring, and replays the whole ring for another epoch', async () => {
    for (let i = 0; i < 5; i++) bus().publish('audit', { i });
    const { ws, messages } = await connect(bearer);
    ws.send(JSON.stringify({ type: 'hello', epoch: bus().epoch, since: 2 }));
    expect(await messages.waitFor((m) => m.type === 'hello')).toMatchObject({ resumed: true, lastSeq: 5 });
    await messages.waitFor((m) => m.seq === 5);
    expect(messages.items.filter((m) => m.type === 'audit').map((m) => m.seq)).toEqual([3, 4, 5]);

    // A controller restart: the cursor belongs to another bus; everything this bus holds is replayed.
    const other = await connect(bearer);
    other.ws.send(JSON.stringify({ type: 'hello', epoch: 'an-old-epoch', since: 4000 }));
    expect(await other.messages.waitFor((m) => m.type === 'hello')).toMatchObject({ resumed: false });
    await other.messages.waitFor((m) => m.seq === 5);
    expect(other.messages.items.filter((m) => m.type === 'audit').map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);

    // A cursor older than the ring: a gap first, then what is still held.
    for (let i = 0; i < 6000; i++) bus().publish('audit', { i });
    const late = await connect(bearer);
    late.ws.send(JSON.stringify({ type: 'hello', epoch: bus().epoch, since: 1 }));
    const gap = await late.messages.waitFor((m) => m.type === 'gap');
    expect(gap.data).toEqual({ from: 2, to: bus().firstSeq - 1 });
    await late.messages.waitFor((m) => m.seq === bus().lastSeq);
  });

  it('bounds a viewer that stops reading: it gets one gap instead of unbounded buffering', async () => {
    const { ws, messages } = await connect(bearer);
    ws.send(JSON.stringify({ type: 'hello' }));
    await messages.waitFor((m) => m.type === 'hello');
    ws.pause(); // stop reading: the kernel buffers fill, then the controller's queue
    const pad = 'x'.repeat(4096);
    const last = await new Promise<number>((resolve) => {
      let seq = 0;
      const publishSome = (): void => {
        for (let i = 0; i < 200; i++) seq = bus().publish('audit', { i, pad }).seq;
        // ~40 MB: far beyond socket buffers plus the 1 MiB per-viewer queue.
        if (seq < 10_000) setImmediate(publishSome);
        else resolve(seq);
      };
      publishSome();
    });
    ws.resume();
    const gap = await messages.waitFor((m) => m.type === 'gap', { timeoutMs: 30_000 });
    expect(gap.data!.to! - gap.data!.from!).toBeGreaterThan(0);
    // The stream carries on after the gap.
    const after = bus().publish('audit', { i: -1 }).seq;
    await messages.waitFor((m) => m.seq === after, { timeoutMs: 30_000 });
    expect(messages.items.filter((m) => m.type === 'audit').length).toBeLessThan(last);
  });
});
