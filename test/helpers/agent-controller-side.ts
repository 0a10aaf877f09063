/**
 * The controller's side of the agent protocol, minimal, over a real `ws` WebSocketServer on
 * port 0: it answers hello with welcome and ping with pong, records every frame, and lets an
 * agent test send calls. A protocol peer for the agent's integration tests, not a mock of the agent.
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Frame } from '../../shared/frames.js';
import { Waitable } from './wait.js';

export interface AgentConnection {
  ws: WebSocket;
  request: IncomingMessage;
  frames: Waitable<Frame>;
  closed: Promise<void>;
  send(frame: Frame | string): void;
  waitFrame<T extends Frame['t']>(t: T, pred?: (frame: Extract<Frame, { t: T }>) => boolean, timeoutMs?: number): Promise<Extract<Frame, { t: T }>>;
}

export interface ControllerSide {
  port: number;
  url: string;
  connections: Waitable<AgentConnection>;
  /** Idempotent. */
  close(): Promise<void>;
}

export async function startControllerSide(
  options: { port?: number; token?: string; heartbeatMs?: number; deadAfterMs?: number; /** The welcome says the controller pings its agents. */ pingsAgents?: boolean } = {},
): Promise<ControllerSide> {
  const wss = new WebSocketServer({ port: options.port ?? 0, host: '127.0.0.1', path: '/agent', perMessageDeflate: false, maxPayload: 2 * 1024 * 1024 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('error', () => undefined);
  const port = (wss.address() as AddressInfo).port;
  const connections = new Waitable<AgentConnection>();
  let sessionCounter = 0;
  let closing: Promise<void> | undefined;
  const side: ControllerSide = {
    port,
    url: `ws://127.0.0.1:${port}/agent`,
    connections,
    close() {
      closing ??= (async () => {
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return closing;
    },
  };
  wss.on('connection', (ws, request) => {
    ws.on('error', () => undefined);
    if (options.token !== undefined && request.headers.authorization !== `Bearer ${options.token}`) {
      ws.close(4401, 'bad token');
      return;
    }
    const frames = new Waitable<Frame>();
    const conn: AgentConnection = {
      ws,
      request,
      frames,
      closed: new Promise<void>((resolve) => ws.once('close', () => resolve())),
      send(frame) {
        ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
      },
      waitFrame(t, pred, timeoutMs) {
        return frames.waitFor((f) => f.t === t && (pred ? pred(f as never) : true), { timeoutMs: timeoutMs ?? 10_000, what: `a '${t}' frame` }) as never;
      },
    };
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const frame = JSON.parse(data.toString()) as Frame;
      if (frame.t === 'hello') {
        sessionCounter += 1;
        conn.send({
          t: 'welcome',
          v: 1,
          sessionId: `s${sessionCounter}`,
          clock: Date.now(),
          heartbeatMs: options.heartbeatMs ?? 20_000,
          deadAfterMs: options.deadAfterMs ?? 45_000,
          ...(options.pingsAgents === undefined ? {} : { pingsAgents: options.pingsAgents }),
        });
      } else if (frame.t === 'ping') {
        conn.send({ t: 'pong', ts: frame.ts });
      }
      frames.push(frame);
    });
    connections.push(conn);
  });
  return side;
}
