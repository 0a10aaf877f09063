/**
 * The streaming relay's boundary, in-process on port 0: a real controller, real ws clients as
 * well-behaved agents, and hand-written frames over plain TCP sockets for what ws would never send
 * (fragments split inside the data header, control frames between fragments). Covers: another
 * stream's header mid-stream, a text frame, a real (non-zero) mask, fragmented messages, a peer
 * that stops answering pings, a clean end from either side, and a malformed opening handshake.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createController, type Controller } from '../../server-stub/app.js';
import { acceptValueOf } from '../../server-stub/hub/data-upgrade.js';
import { encodeFrameHeader, OPCODES } from '../../shared/ws-wire.js';
import { decodeDataFrame, encodeDataFrame } from '../../shared/codec.js';
import { DATA_CONNECTIONS_CAPABILITY, DATA_HEADERS, type DataRole } from '../../shared/data-link.js';
import type { StreamTokens } from '../../server-stub/hub/stream-tokens.js';
import { TestPeer } from '../helpers/controller-peer.js';
import { waitFor } from '../helpers/wait.js';

const AGENT_TOKEN = 'agent-secret-token';
const HEARTBEAT_MS = 200;
let controller: Controller;
let dataDir: string;
const peers: TestPeer[] = [];
const sockets: WebSocket[] = [];
const rawSockets: Socket[] = [];

beforeEach(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'seedwire-relay-'));
  // Short data-connection pings so a silent peer is found quickly; the control links answer theirs.
  controller = await createController({ dataDir, adminToken: 'admin-token-relay', agentToken: AGENT_TOKEN, heartbeatMs: HEARTBEAT_MS, deadAfterMs: 30_000 });
  for (const agentId of ['src', 'dst']) {
    const peer = new TestPeer({ url: controller.wsUrl, token: AGENT_TOKEN, agentId, hello: { capabilities: ['exec', DATA_CONNECTIONS_CAPABILITY] } });
    peers.push(peer);
    await peer.connect();
  }
});

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const socket of rawSockets.splice(0)) socket.destroy();
  await Promise.all(peers.splice(0).map((p) => p.close()));
  await controller.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Inbox {
  messages: Array<{ data: Buffer; isBinary: boolean }>;
  closed: Promise<{ code: number; reason: string }>;
}

const inboxes = new WeakMap<WebSocket, Inbox>();

function headersOf(claim: { token: string; agentId: string; stream: number; role: DataRole }): Record<string, string> {
  return { authorization: `Bearer ${claim.token}`, [DATA_HEADERS.agent]: claim.agentId, [DATA_HEADERS.stream]: String(claim.stream), [DATA_HEADERS.role]: claim.role };
}

/** A real ws client on /data; `zeroMask` as agents do, otherwise ws's random masks. */
async function dialWs(claim: { token: string; agentId: string; stream: number; role: DataRole }, options: { zeroMask?: boolean; autoPong?: boolean } = {}): Promise<WebSocket> {
  const ws = new WebSocket(controller.wsUrl.replace(/\/agent$/, '/data'), {
    headers: headersOf(claim),
    perMessageDeflate: false,
    autoPong: options.autoPong ?? true,
    ...(options.zeroMask === false ? {} : { generateMask: (mask: Buffer) => mask.fill(0) }),
  });
  sockets.push(ws);
  const inbox: Inbox = {
    messages: [],
    closed: new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
  };
  inboxes.set(ws, inbox);
  ws.on('message', (data, isBinary) => inbox.messages.push({ data: data as Buffer, isBinary }));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
  });
  return ws;
}

function inbox(ws: WebSocket): Inbox {
  return inboxes.get(ws)!;
}

/** A plain TCP client that does the opening handshake by hand and then writes whatever frames a test gives it. */
class RawClient {
  private received = Buffer.alloc(0);
  readonly ended: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => (this.received = Buffer.concat([this.received, chunk])));
    socket.on('error', () => {});
    this.ended = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async open(claim: { token: string; agentId: string; stream: number; role: DataRole }, extra: Record<string, string> = {}): Promise<{ client: RawClient; status: number }> {
    const { port } = new URL(controller.url);
    const socket = connect(Number(port), '127.0.0.1');
    rawSockets.push(socket);
    const client = new RawClient(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const headers = { host: `127.0.0.1:${port}`, upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': key, 'sec-websocket-version': '13', ...headersOf(claim), ...extra };
    socket.write(`GET /data HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    await waitFor(() => client.received.includes('\r\n\r\n'), { what: 'the handshake answer' });
    const end = client.received.indexOf('\r\n\r\n') + 4;
    const answer = client.received.subarray(0, end).toString();
    client.received = client.received.subarray(end);
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(answer)?.[1]);
    if (status === 101) expect(answer).toContain(`Sec-WebSocket-Accept: ${acceptValueOf(key)}`);
    return { client, status };
  }

  /** A masked client frame (mask all zero unless given). */
  frame(opcode: number, payload: Buffer, fin = true, mask = [0, 0, 0, 0]): Buffer {
    const header = encodeFrameHeader(opcode, fin, payload.length);
    header[1] = (header[1] ?? 0) | 0x80;
    const body = Buffer.from(payload);
    for (let i = 0; i < body.length; i += 1) body[i] = (body[i] ?? 0) ^ (mask[i & 3] ?? 0);
    return Buffer.concat([header, Buffer.from(mask), body]);
  }

  write(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** The server frames received so far (unmasked, small enough to read whole). */
  frames(): Array<{ opcode: number; payload: Buffer }> {
    const out: Array<{ opcode: number; payload: Buffer }> = [];
    let at = 0;
    while (at + 2 <= this.received.length) {
      const len7 = (this.received[at + 1] ?? 0) & 0x7f;
      const [length, start] = len7 === 126 ? [this.received.readUInt16BE(at + 2), at + 4] : len7 === 127 ? [Number(this.received.readBigUInt64BE(at + 2)), at + 10] : [len7, at + 2];
      if (start + length > this.received.length) break;
      out.push({ opcode: (this.received[at] ?? 0) & 0x0f, payload: this.received.subarray(start, start + length) });
      at = start + length;
    }
    return out;
  }
}

function openStream(): { stream: number; tokens: StreamTokens } {
  const relay = controller.deps.hub.relay;
  const stream = relay.allocate();
  const tokens = relay.open(stream, { from: 'src', to: 'dst' });
  if (!tokens) throw new Error('expected data connections');
  return { stream, tokens };
}

function dataFrame(stream: number, offset: number, payload: Buffer): Buffer {
  return encodeDataFrame({ stream, offset, rawLength: payload.length, codec: 'none', payload });
}

/** Both sides of a fresh stream, the receiver (a ws client) first, the sender as given. */
async function joinedStream(): Promise<{ stream: number; tokens: StreamTokens; receiver: WebSocket }> {
  const { stream, tokens } = openStream();
  const receiver = await dialWs({ token: tokens.receive, agentId: 'dst', stream, role: 'receive' });
  return { stream, tokens, receiver };
}

describe('the streaming relay', () => {
  it('forwards frames a real mask hid, unmasked, byte for byte (large frames cross many socket reads)', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const sender = await dialWs({ token: tokens.send, agentId: 'src', stream, role: 'send' }, { zeroMask: false });
    const payloads = [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(200_000, 3), Buffer.from(Array.from({ length: 1024 * 1024 }, (_, i) => (i * 7) & 0xff))];
    const frames = payloads.map((payload, i) => dataFrame(stream, i, payload));
    for (const frame of frames) sender.send(frame, { binary: true });
    await waitFor(() => inbox(receiver).messages.length === frames.length, { what: 'every frame at the receiver' });
    inbox(receiver).messages.forEach((message, i) => {
      expect(message.isBinary).toBe(true);
      expect(message.data.equals(frames[i]!)).toBe(true);
    });
    expect(controller.deps.hub.relay.bytesRelayed(stream)).toBe(frames.reduce((sum, f) => sum + f.length, 0));
    controller.deps.hub.relay.close(stream);
  });

  it('passes fragmented messages on, the data header checked even when split across fragments; pings between fragments are answered', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const { client, status } = await RawClient.open({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    expect(status).toBe(101);
    const first = dataFrame(stream, 0, Buffer.from('header split over three fragments'));
    const second = dataFrame(stream, 100, Buffer.alloc(70_000, 5));
    client.write(
      client.frame(OPCODES.binary, first.subarray(0, 5), false, [9, 8, 7, 6]),
      client.frame(OPCODES.ping, Buffer.from('hi')),
      client.frame(OPCODES.continuation, first.subarray(5, 5), false),
      client.frame(OPCODES.continuation, first.subarray(5, 30), false),
      client.frame(OPCODES.continuation, first.subarray(30)),
      client.frame(OPCODES.binary, second.subarray(0, 40_000), false),
      client.frame(OPCODES.continuation, second.subarray(40_000)),
    );
    await waitFor(() => inbox(receiver).messages.length === 2, { what: 'both messages at the receiver' });
    expect(inbox(receiver).messages[0]?.data.equals(first)).toBe(true);
    expect(inbox(receiver).messages[1]?.data.equals(second)).toBe(true);
    expect(decodeDataFrame(inbox(receiver).messages[0]!.data).payload.toString()).toBe('header split over three fragments');
    expect(client.frames()).toContainEqual({ opcode: OPCODES.pong, payload: Buffer.from('hi') });
    expect(controller.deps.hub.relay.bytesRelayed(stream)).toBe(first.length + second.length);
    controller.deps.hub.relay.close(stream);
  });

  it('another stream\'s frame mid-stream closes both sides (4000, naming both streams); nothing of it reaches the receiver', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const sender = await dialWs({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    sender.send(dataFrame(stream, 0, Buffer.from('good')), { binary: true });
    sender.send(dataFrame(stream + 1000, 4, Buffer.from('not yours')), { binary: true });
    const reason = `the sender sent a frame of stream ${stream + 1000} on stream ${stream}'s connection`;
    expect(await inbox(receiver).closed).toEqual({ code: 4000, reason });
    expect(await inbox(sender).closed).toEqual({ code: 4000, reason });
    expect(inbox(receiver).messages.map((m) => decodeDataFrame(m.data).payload.toString())).toEqual(['good']);
    controller.deps.hub.relay.close(stream);
  });

  it('a data header split across fragments is checked too: a bad magic is refused before any of it is forwarded', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const { client } = await RawClient.open({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    const bad = dataFrame(stream, 0, Buffer.from('payload'));
    bad[0] = 0x00;
    client.write(client.frame(OPCODES.binary, bad.subarray(0, 10), false), client.frame(OPCODES.continuation, bad.subarray(10)));
    expect(await inbox(receiver).closed).toEqual({ code: 4000, reason: 'bad data frame from the sender: data frame has a bad magic' });
    expect(inbox(receiver).messages).toEqual([]);
    await client.ended;
    controller.deps.hub.relay.close(stream);
  });

  it('a text frame from the sender, or a message shorter than a data header, closes both with a reason', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const sender = await dialWs({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    sender.send('{"t":"credit"}');
    expect(await inbox(receiver).closed).toEqual({ code: 4000, reason: 'the sender sent a text frame on a data connection' });
    controller.deps.hub.relay.close(stream);

    const next = await joinedStream();
    const short = await dialWs({ token: next.tokens.send, agentId: 'src', stream: next.stream, role: 'send' });
    short.send(Buffer.from('tiny'), { binary: true });
    expect(await inbox(next.receiver).closed).toEqual({ code: 4000, reason: 'bad data frame from the sender: a message of 4 bytes is shorter than its 24-byte header' });
    controller.deps.hub.relay.close(next.stream);
  });

  it('a framing violation (an unmasked client frame) closes both, naming it', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const { client } = await RawClient.open({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    const frame = dataFrame(stream, 0, Buffer.from('x'));
    client.write(Buffer.concat([encodeFrameHeader(OPCODES.binary, true, frame.length), frame]));
    expect(await inbox(receiver).closed).toEqual({ code: 4000, reason: 'bad frame from the sender: an unmasked frame (a client must mask its frames)' });
    await client.ended;
    expect(client.frames().at(-1)?.opcode).toBe(OPCODES.close);
    controller.deps.hub.relay.close(stream);
  });

  it('the receiver: a binary frame closes both; credit frames go back to the sender', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const sender = await dialWs({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    receiver.send(JSON.stringify({ t: 'credit', stream, limit: 4096 }));
    receiver.send(JSON.stringify({ t: 'credit', stream, limit: 8192 }));
    await waitFor(() => inbox(sender).messages.length === 2, { what: 'both grants at the sender' });
    expect(inbox(sender).messages.map((m) => JSON.parse(m.data.toString()) as unknown)).toEqual([
      { t: 'credit', stream, limit: 4096 },
      { t: 'credit', stream, limit: 8192 },
    ]);
    receiver.send(Buffer.from('binary'), { binary: true });
    expect(await inbox(sender).closed).toEqual({ code: 4000, reason: 'the receiver sent a binary frame on a data connection' });
    controller.deps.hub.relay.close(stream);
  });

  it('a peer that stops answering pings is terminated, and the other side is closed saying so', async () => {
    const { stream, tokens } = openStream();
    const receiver = await dialWs({ token: tokens.receive, agentId: 'dst', stream, role: 'receive' }, { autoPong: false });
    const sender = await dialWs({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    expect((await inbox(receiver).closed).code).toBe(1006);
    expect(await inbox(sender).closed).toEqual({ code: 1000, reason: 'the receive data connection closed (1006)' });
    controller.deps.hub.relay.close(stream);
  });

  it('a clean end: the sender closes (1000) after its last frame, the receiver gets every frame and the reason; the stream closing ends a lone side', async () => {
    const { stream, tokens, receiver } = await joinedStream();
    const sender = await dialWs({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    for (let i = 0; i < 5; i += 1) sender.send(dataFrame(stream, i * 1000, Buffer.alloc(1000, i)), { binary: true });
    sender.close(1000, 'done');
    expect(await inbox(sender).closed).toEqual({ code: 1000, reason: '' });
    expect(await inbox(receiver).closed).toEqual({ code: 1000, reason: 'the send data connection closed (1000 done)' });
    expect(inbox(receiver).messages.map((m) => decodeDataFrame(m.data).offset)).toEqual([0, 1000, 2000, 3000, 4000]);
    controller.deps.hub.relay.close(stream);

    const lone = await joinedStream();
    controller.deps.hub.relay.close(lone.stream);
    expect(await inbox(lone.receiver).closed).toEqual({ code: 1000, reason: `stream ${lone.stream} ended` });
  });

  it('a request that is not a WebSocket handshake is refused before its token is used', async () => {
    const { stream, tokens } = openStream();
    const { status } = await RawClient.open({ token: tokens.send, agentId: 'src', stream, role: 'send' }, { 'sec-websocket-version': '8' });
    expect(status).toBe(400);
    const { status: retry } = await RawClient.open({ token: tokens.send, agentId: 'src', stream, role: 'send' });
    expect(retry).toBe(101);
    controller.deps.hub.relay.close(stream);
  });
});
