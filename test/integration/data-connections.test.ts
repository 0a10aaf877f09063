/**
 * Data connections at the controller, in-process on port 0 with protocol-level peers: which
 * streams get tokens, what a stream token opens (its own stream's side, once) and what it is
 * refused for, and how the two connections of a stream are joined.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { createController, type Controller } from '../../server-stub/app.js';
import { decodeDataFrame, encodeDataFrame } from '../../shared/codec.js';
import { DATA_CONNECTIONS_CAPABILITY, DATA_HEADERS, type DataRole } from '../../shared/data-link.js';
import { TestPeer } from '../helpers/controller-peer.js';

const AGENT_TOKEN = 'agent-secret-token';
let controller: Controller;
let dataDir: string;
const peers: TestPeer[] = [];
const sockets: WebSocket[] = [];

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-datacon-'));
  controller = await createController({ dataDir, adminToken: 'admin-token-datacon', agentToken: AGENT_TOKEN });
});

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function connectPeer(agentId: string, dataConnections = true): Promise<TestPeer> {
  const capabilities = dataConnections ? ['exec', DATA_CONNECTIONS_CAPABILITY] : ['exec'];
  const peer = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId, hello: { capabilities } });
  peers.push(peer);
  await peer.connect();
  return peer;
}

interface Refusal {
  status: number;
  code: string;
  message: string;
}

/** Dials /data with a claim; resolves with the open socket or the refusal (status and JSON error). */
function dialData(claim: { token?: string; agentId: string; stream: number; role: DataRole }): Promise<WebSocket | Refusal> {
  const url = controller.wsUrl.replace(/\/agent$/, '/data');
  const headers: Record<string, string> = { [DATA_HEADERS.agent]: claim.agentId, [DATA_HEADERS.stream]: String(claim.stream), [DATA_HEADERS.role]: claim.role };
  if (claim.token !== undefined) headers.authorization = `Bearer ${claim.token}`;
  const ws = new WebSocket(url, { headers, generateMask: (mask) => mask.fill(0) });
  sockets.push(ws);
  // Listening from the start: the controller may send a grant in the same packet as the 101.
  const inbox: Array<{ data: Buffer; isBinary: boolean }> = [];
  inboxes.set(ws, { items: inbox, waiters: [] });
  ws.on('message', (data, isBinary) => {
    const box = inboxes.get(ws)!;
    const waiter = box.waiters.shift();
    if (waiter) waiter({ data: data as Buffer, isBinary });
    else box.items.push({ data: data as Buffer, isBinary });
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const error = (JSON.parse(body) as { error: { code: string; message: string } }).error;
        resolve({ status: res.statusCode ?? 0, code: error.code, message: error.message });
      });
    });
    ws.once('error', (error) => {
      if (!error.message.startsWith('Unexpected server response')) reject(error);
    });
  });
}

type Message = { data: Buffer; isBinary: boolean };
const inboxes = new WeakMap<WebSocket, { items: Message[]; waiters: Array<(m: Message) => void> }>();

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${controller.url}/metrics`, { headers: { authorization: 'Bearer admin-token-datacon' } })).text();
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

function nextMessage(ws: WebSocket): Promise<Message> {
  const box = inboxes.get(ws)!;
  const queued = box.items.shift();
  return queued ? Promise.resolve(queued) : new Promise((resolve) => box.waiters.push(resolve));
}

function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => (ws.readyState === ws.CLOSED ? resolve(ws.readyState) : ws.once('close', (code) => resolve(code))));
}

describe('data connections', () => {
  it('a stream gets tokens only when both agents dial data connections', async () => {
    await connectPeer('new-a');
    await connectPeer('new-b');
    await connectPeer('old-c', false);
    const relay = controller.deps.hub.relay;
    const both = relay.allocate();
    const tokens = relay.open(both, { from: 'new-a', to: 'new-b' });
    expect(tokens?.send).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(tokens?.receive).not.toBe(tokens?.send);
    const mixed = relay.allocate();
    expect(relay.open(mixed, { from: 'new-a', to: 'old-c' })).toBeNull();
    relay.close(both);
    relay.close(mixed);
  });

  it('joins the two sides: data frames forwarded as sent, credit back (the latest grant replayed to a late sender)', async () => {
    await connectPeer('src');
    await connectPeer('dst');
    const relay = controller.deps.hub.relay;
    const stream = relay.allocate();
    const tokens = relay.open(stream, { from: 'src', to: 'dst' })!;
    const receiver = (await dialData({ token: tokens.receive, agentId: 'dst', stream, role: 'receive' })) as WebSocket;
    expect(receiver).toBeInstanceOf(WebSocket);
    const credit = relay.waitForCredit(stream, 0);
    receiver.send(JSON.stringify({ t: 'credit', stream, limit: 65536 }));
    expect(await credit).toBe(65536);

    const senderWs = (await dialData({ token: tokens.send, agentId: 'src', stream, role: 'send' })) as WebSocket;
    expect(JSON.parse((await nextMessage(senderWs)).data.toString())).toEqual({ t: 'credit', stream, limit: 65536 });

    const payload = Buffer.from('seed bytes on a data connection');
    const frame = encodeDataFrame({ stream, offset: 0, rawLength: payload.length, codec: 'none', payload });
    const got = nextMessage(receiver);
    senderWs.send(frame, { binary: true });
    const received = await got;
    expect(received.isBinary).toBe(true);
    expect(received.data.equals(frame)).toBe(true);
    expect(decodeDataFrame(received.data).payload.toString()).toBe('seed bytes on a data connection');
    expect(relay.bytesRelayed(stream)).toBe(frame.length);
    expect(await metric('seedwire_relay_control_data_frames_total')).toBe(0);

    const later = nextMessage(senderWs);
    receiver.send(JSON.stringify({ t: 'credit', stream, limit: 131072 }));
    expect(JSON.parse((await later).data.toString())).toEqual({ t: 'credit', stream, limit: 131072 });

    // One side dropping ends the other: the attempt fails like a dropped link and is resumed.
    const senderClosed = closed(senderWs);
    receiver.terminate();
    await senderClosed;
    relay.close(stream);
  });

  it('a slow receiver stops the sender: the controller pauses reading it instead of queueing', async () => {
    await connectPeer('src');
    await connectPeer('dst');
    const relay = controller.deps.hub.relay;
    const stream = relay.allocate();
    const tokens = relay.open(stream, { from: 'src', to: 'dst' })!;
    const receiver = (await dialData({ token: tokens.receive, agentId: 'dst', stream, role: 'receive' })) as WebSocket;
    const sender = (await dialData({ token: tokens.send, agentId: 'src', stream, role: 'send' })) as WebSocket;
    receiver.send(JSON.stringify({ t: 'credit', stream, limit: 64 * 1024 * 1024 }));
    expect(JSON.parse((await nextMessage(sender)).data.toString())).toMatchObject({ t: 'credit' });

    receiver.pause(); // the target stops reading
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const frames = 40;
    for (let i = 0; i < frames; i += 1) sender.send(encodeDataFrame({ stream, offset: i * chunk.length, rawLength: chunk.length, codec: 'none', payload: chunk }), { binary: true });
    // The controller holds about a watermark and stops reading the sender: most of the 40 MiB
    // stays in the sender's own buffer (loopback socket buffers hold a few MiB at most).
    await vi.waitFor(() => expect(relay.bytesRelayed(stream)).toBeGreaterThan(0), { timeout: 10_000 });
    await vi.waitFor(() => expect(sender.bufferedAmount).toBeGreaterThan(16 * 1024 * 1024), { timeout: 10_000 });
    expect(relay.bytesRelayed(stream)).toBeLessThan(24 * 1024 * 1024);

    receiver.resume();
    let expected = 0;
    while (expected < frames) {
      const { data } = await nextMessage(receiver);
      expect(decodeDataFrame(data).offset).toBe(expected * chunk.length);
      expected += 1;
    }
    expect(relay.bytesRelayed(stream)).toBe(frames * (chunk.length + 24));
    relay.close(stream);
  });

  it('a stream token opens only its own side of its own stream, once, while the stream is open', async () => {
    await connectPeer('src');
    await connectPeer('dst');
    const relay = controller.deps.hub.relay;
    const stream = relay.allocate();
    const tokens = relay.open(stream, { from: 'src', to: 'dst' })!;
    const other = relay.allocate();
    const otherTokens = relay.open(other, { from: 'src', to: 'dst' })!;

    expect(await dialData({ agentId: 'src', stream, role: 'send' })).toMatchObject({ status: 401, code: 'SEEDWIRE_AUTH', message: expect.stringContaining('stream token') });
    expect(await dialData({ token: 'x'.repeat(43), agentId: 'src', stream, role: 'send' })).toMatchObject({ status: 401, code: 'SEEDWIRE_AUTH', message: expect.stringContaining('unknown stream token') });
    // Another stream's token, the other role's token, another agent's claim: refused, naming what was wrong.
    expect(await dialData({ token: otherTokens.send, agentId: 'src', stream, role: 'send' })).toMatchObject({ status: 403, code: 'SEEDWIRE_FORBIDDEN', message: `the stream token is not for stream ${stream}` });
    expect(await dialData({ token: tokens.receive, agentId: 'dst', stream, role: 'send' })).toMatchObject({ status: 403, code: 'SEEDWIRE_FORBIDDEN', message: 'the stream token is not for role send' });
    expect(await dialData({ token: tokens.send, agentId: 'dst', stream, role: 'send' })).toMatchObject({ status: 403, code: 'SEEDWIRE_FORBIDDEN', message: 'the stream token is not for agent dst' });
    expect(await dialData({ token: tokens.send, agentId: 'src', stream, role: 'bogus' as DataRole })).toMatchObject({ status: 400, code: 'SEEDWIRE_BAD_REQUEST' });

    // The rightful claim still works after those refusals, once.
    const sender = await dialData({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    expect(sender).toBeInstanceOf(WebSocket);
    expect(await dialData({ token: tokens.send, agentId: 'src', stream, role: 'send' })).toMatchObject({ status: 401, code: 'SEEDWIRE_AUTH', message: expect.stringContaining('already used') });

    // The stream ends: its open connection is closed and its unused token dies with it.
    const senderClosed = closed(sender as WebSocket);
    relay.close(stream);
    await senderClosed;
    expect(await dialData({ token: tokens.receive, agentId: 'dst', stream, role: 'receive' })).toMatchObject({ status: 401, code: 'SEEDWIRE_AUTH', message: expect.stringContaining('its stream ended') });
    relay.close(other);
    expect(await dialData({ token: otherTokens.send, agentId: 'src', stream: other, role: 'send' })).toMatchObject({ status: 401, code: 'SEEDWIRE_AUTH' });
    expect(await metric('seedwire_data_connections_refused_total')).toBe(9);
  });
});
