/**
 * A receiving data connection reads its frames itself (agent/streams/data-channel.ts with
 * ws-reader.ts): against a real ws server on port 0, through the agent's real dialer, the frames
 * arrive as pieces of socket reads (ws's own receiver never sees them), pings are answered,
 * credit goes out, and the server's close ends the channel with its code.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { createDataDialer } from '../../agent/connection/data-dial.js';
import type { Session } from '../../agent/connection/session.js';
import { ConnectionStreamPort } from '../../agent/streams/port.js';
import type { ReceivedChunk } from '../../agent/streams/types.js';
import { decodeFrame, encodeDataFrame } from '../../shared/codec.js';
import { waitFor } from '../helpers/wait.js';

const log = pino({ level: 'silent' });
let server: Server | undefined;
let wss: WebSocketServer | undefined;
const controls: AbortController[] = [];

afterEach(async () => {
  for (const control of controls.splice(0)) control.abort();
  for (const client of wss?.clients ?? []) client.terminate();
  await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  wss = undefined;
});

/** A ws server standing in for the controller's /data: hands over each connection it accepts. */
async function startServer(): Promise<{ url: string; next: () => Promise<WebSocket> }> {
  server = createServer();
  wss = new WebSocketServer({ server, path: '/data' });
  const accepted: WebSocket[] = [];
  wss.on('connection', (ws) => accepted.push(ws));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/agent`,
    next: async () => {
      await waitFor(() => accepted.length > 0, { what: 'the data connection' });
      return accepted.shift()!;
    },
  };
}

function controlSession(): Session {
  const control = new AbortController();
  controls.push(control);
  return { id: 'control', signal: control.signal, send: () => true, sendBinary: () => true, bufferedAmount: 0 };
}

function openReceiver(url: string) {
  const dial = createDataDialer({ controllerUrl: url, agentId: 'a1', ca: undefined, handshakeTimeoutMs: 5_000, keepAliveMs: 30_000, log });
  const streams = new ConnectionStreamPort(controlSession, log, undefined, dial);
  const port = streams.openReceive(9, { token: 'stream-token' });
  const chunks: ReceivedChunk[] = [];
  let failure: unknown = null;
  const consumed = (async () => {
    for await (const chunk of port.chunks()) chunks.push(chunk);
  })().catch((error: unknown) => {
    failure = error;
  });
  return { port, chunks, consumed, failed: () => failure };
}

describe('a receiving data connection reads its own frames', () => {
  it('takes data frames as pieces, answers pings, sends credit, and ends on the server\'s close with its code', async () => {
    const { url, next } = await startServer();
    const receiver = openReceiver(url);
    const ws = await next();
    const credits: unknown[] = [];
    ws.on('message', (data) => credits.push(decodeFrame(String(data))));
    receiver.port.grant(4 << 20);
    await waitFor(() => credits.length === 1, { what: 'the grant' });
    expect(credits[0]).toEqual({ t: 'credit', stream: 9, limit: 4 << 20 });

    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
    ws.send(encodeDataFrame({ stream: 9, offset: 0, rawLength: big.length, codec: 'none', payload: big }));
    // fragmented by the server: still one frame, still in order
    const small = encodeDataFrame({ stream: 9, offset: big.length, rawLength: 5, codec: 'none', payload: Buffer.from('hello') });
    ws.send(small.subarray(0, 10), { binary: true, fin: false });
    ws.send(small.subarray(10), { binary: true, fin: true });
    await waitFor(() => receiver.chunks.reduce((n, c) => n + c.rawLength, 0) === big.length + 5, { what: 'every byte' });
    expect(Buffer.concat(receiver.chunks.map((c) => c.payload)).equals(Buffer.concat([big, Buffer.from('hello')]))).toBe(true);
    // a 1 MiB message over loopback comes in several reads: several pieces, each at its offset
    expect(receiver.chunks.length).toBeGreaterThan(2);
    let offset = 0;
    for (const chunk of receiver.chunks) {
      expect(chunk.offset).toBe(offset);
      offset += chunk.rawLength;
    }
    expect(receiver.chunks.filter((c) => c.more !== true).map((c) => c.offset + c.rawLength)).toEqual([big.length, big.length + 5]);

    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('are you there'));
    expect((await pong).toString()).toBe('are you there');

    ws.close(4000, 'stream lost');
    await receiver.consumed;
    expect(receiver.failed()).toMatchObject({ code: 'SEEDWIRE_DISCONNECTED', message: expect.stringContaining('(4000 stream lost)') as unknown });
  });

  it('a frame of another stream ends the channel as a bad frame', async () => {
    const { url, next } = await startServer();
    const receiver = openReceiver(url);
    const ws = await next();
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    ws.send(encodeDataFrame({ stream: 10, offset: 0, rawLength: 3, codec: 'none', payload: Buffer.from('abc') }));
    await receiver.consumed;
    expect(receiver.failed()).toMatchObject({ code: 'SEEDWIRE_BAD_FRAME', message: expect.stringContaining('a frame of stream 10') as unknown });
    expect(receiver.chunks).toEqual([]);
    expect(await closed).toBe(4000);
  });
});
