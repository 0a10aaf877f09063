/**
 * The delaying proxy the long-link tests use (test/helpers/delay-proxy.ts), over real sockets:
 * a round trip through it takes at least twice its one-way delay, bytes arrive whole and in order
 * under backpressure, a half-close follows the data, and a stall holds everything meanwhile.
 */
import { randomBytes, createHash } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startDelayProxy, type DelayProxy } from '../helpers/delay-proxy.js';

const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const thing of open.splice(0).reverse()) await thing.close();
});

/** An echo server on port 0 that counts what it received. */
async function startEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function through(proxy: DelayProxy): Promise<net.Socket> {
  const socket = net.connect(proxy.port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  return socket;
}

describe('delay proxy', () => {
  it('adds the delay each way, keeps bytes whole and in order, forwards the half-close after the data', async () => {
    const echo = await startEcho();
    open.push(echo);
    const proxy = await startDelayProxy({ target: { host: '127.0.0.1', port: echo.port }, delayMs: 40, maxHeldBytes: 256 * 1024 });
    open.push(proxy);
    const socket = await through(proxy);

    const started = performance.now();
    socket.write('ping');
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    expect(performance.now() - started).toBeGreaterThanOrEqual(80 - 2);

    // 8 MiB, far above the proxy's bound: backpressure, not buffering
    const payload = randomBytes(8 * 1024 * 1024);
    const hash = createHash('sha256');
    let received = 0;
    const done = new Promise<void>((resolve) => socket.on('end', resolve));
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
    });
    socket.end(payload);
    await done;
    expect(received).toBe(payload.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    socket.destroy();
  });

  it('a stall holds every byte until it ends', async () => {
    const echo = await startEcho();
    open.push(echo);
    const proxy = await startDelayProxy({ target: { host: '127.0.0.1', port: echo.port }, delayMs: 5, stallEveryMs: 100, stallMs: 60 });
    open.push(proxy);
    const socket = await through(proxy);
    const rtts: number[] = [];
    // every round trip takes at least 10 ms, so 30 of them span several stalls
    for (let i = 0; i < 30; i += 1) {
      const started = performance.now();
      socket.write('x');
      await new Promise<void>((resolve) => socket.once('data', () => resolve()));
      rtts.push(performance.now() - started);
    }
    expect(proxy.stalls).toBeGreaterThan(0);
    // a round trip caught by a stall waited for its end: at least 60 ms less the 10 ms it was on its way before
    expect(Math.max(...rtts)).toBeGreaterThanOrEqual(50);
    socket.destroy();
  });
});
