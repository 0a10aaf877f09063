/**
 * Dials one data connection: a second WebSocket to the same controller as the control session (with
 * several controllers, the one the session is on), same port, at `/data`, through
 * the same TLS settings and proxy as the control link (socket.ts, proxy.ts), presenting the
 * stream's one-time token, never the agent's own. Frames are sent with a zero mask (socket.ts).
 * The token is never logged: only the stream and role are.
 */
import type { Logger } from 'pino';
import type WebSocket from 'ws';
import { DATA_HEADERS, DATA_PATH, type DataRole } from '../../shared/data-link.js';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import { DataReader } from '../streams/data-reader.js';
import { readRefusal } from './link.js';
import { chooseProxy, describeProxy, describeTunnelFailure, openTunnel, type ProxySettings, type TunnelState } from './proxy.js';
import { openSocket, type ClientCertificate } from './socket.js';

export interface DataDialOptions {
  /**
   * The URL of the controller the control session is on (the one that issued the stream token);
   * the data path replaces its last segment. Undefined while no session is up.
   */
  controllerUrl: () => string | undefined;
  agentId: string;
  tls?: { ca?: string | undefined; insecureSkipVerify: boolean } | undefined;
  ca: Buffer | undefined;
  clientCertificate?: ClientCertificate | undefined;
  proxy?: ProxySettings | undefined;
  handshakeTimeoutMs: number;
  keepAliveMs: number;
  log: Logger;
}

export interface DataTicketFor {
  stream: number;
  role: DataRole;
  token: string;
}

/** `ws://host:port/agent` → `ws://host:port/data` (a path prefix before `agent` is kept). */
export function dataUrlOf(controllerUrl: string): string {
  return new URL(DATA_PATH.slice(1), controllerUrl).href;
}

/**
 * Dials; `onOpen` runs synchronously in ws's 'open' event, so its listeners are in place before
 * the first message (the controller sends the latest grant at once, and ws may emit it before a
 * promise callback would run). The promise settles when the dial succeeded or failed.
 *
 * A receiving connection the agent opens itself (not through a proxy) comes with a DataReader
 * (agent/streams/data-reader.ts), which `onOpen` must take over: its socket reads into it.
 */
export type DataDialer = (ticket: DataTicketFor, signal: AbortSignal, onOpen: (ws: WebSocket, reader?: DataReader) => void) => Promise<void>;

export function createDataDialer(options: DataDialOptions): DataDialer {
  return async (ticket, signal, onOpen) => {
    // Read at each dial: with several controllers the session may be on any of them.
    const controllerUrl = options.controllerUrl();
    if (controllerUrl === undefined) throw new SeedwireError('SEEDWIRE_DISCONNECTED', `no link to a controller for the ${ticket.role} data connection of stream ${ticket.stream}`);
    const url = dataUrlOf(controllerUrl);
    const route = options.proxy ? chooseProxy(url, options.proxy) : null;
    let tunnel: TunnelState | undefined;
    let agent;
    if (route) {
      try {
        ({ agent, tunnel } = await openTunnel(route));
      } catch (error) {
        throw new SeedwireError('SEEDWIRE_PROXY', `cannot use proxy ${describeProxy(route.url)}: ${toSeedwireError(error).message}`, { cause: error });
      }
    }
    signal.throwIfAborted();
    const reader = ticket.role === 'receive' && !route ? new DataReader() : undefined;
    const ws = openSocket(
      {
        url,
        token: ticket.token,
        tls: options.tls,
        handshakeTimeoutMs: options.handshakeTimeoutMs,
        keepAliveMs: options.keepAliveMs,
        agent,
        headers: { [DATA_HEADERS.agent]: options.agentId, [DATA_HEADERS.stream]: String(ticket.stream), [DATA_HEADERS.role]: ticket.role },
        zeroMask: true,
        ...(reader ? { createConnection: reader.connector(new URL(url).protocol === 'wss:') } : {}),
      },
      options.ca,
      options.clientCertificate,
    );
    const what = `the ${ticket.role} data connection of stream ${ticket.stream}`;
    return new Promise<void>((resolve, reject) => {
      const fail = (error: SeedwireError): void => {
        signal.removeEventListener('abort', onAbort);
        ws.terminate();
        reject(error);
      };
      const onAbort = (): void => fail(new SeedwireError('SEEDWIRE_CANCELED', `${what} was abandoned while dialing`));
      signal.addEventListener('abort', onAbort, { once: true });
      let refused = false;
      ws.once('open', () => {
        signal.removeEventListener('abort', onAbort);
        options.log.debug({ stream: ticket.stream, role: ticket.role }, 'data connection open');
        onOpen(ws, reader);
        resolve();
      });
      ws.once('unexpected-response', (_req, res) => {
        refused = true;
        if (tunnel && tunnel.status !== 200) {
          res.resume();
          fail(new SeedwireError('SEEDWIRE_PROXY', describeTunnelFailure(tunnel, url)));
          return;
        }
        // readRefusal never rejects. A refusal fails this attempt like a dropped link: the seed
        // machine retries on a new stream with new tokens, and gives up after its fruitless attempts.
        void readRefusal(res).then((refusal) =>
          fail(new SeedwireError('SEEDWIRE_DISCONNECTED', `controller refused ${what} (${refusal.status}${refusal.code ? ` ${refusal.code}` : ''}): ${refusal.message}`)),
        );
      });
      ws.on('error', (error) => {
        if (refused) return;
        if (tunnel && tunnel.status !== 200) fail(new SeedwireError('SEEDWIRE_PROXY', describeTunnelFailure(tunnel, url, error)));
        else fail(new SeedwireError('SEEDWIRE_DISCONNECTED', `cannot open ${what}: ${error.message}`, { cause: error }));
      });
    });
  };
}
