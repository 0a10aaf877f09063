/**
 * The controller's one NATS connection: parsed from `--bus nats://[user:pass@|token@]host:port`,
 * dialed in the background (a controller starts and serves its own agents while NATS is down),
 * redialed forever after a loss. `connected` is what routing checks before it asks anything: a
 * request made while disconnected would only sit in the client's buffer until it timed out.
 */
import { connect, createInbox, Events, type ConnectionOptions, type Msg, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';

export interface BusAddress {
  /** host:port list for the client, without credentials. */
  servers: string[];
  /** The URL as it may be logged (credentials removed). */
  shown: string;
  auth: { user: string; pass: string } | { token: string } | null;
  tls: boolean;
}

/** Parses `nats://` or `tls://` URLs (comma-separated for several servers); refusals name the flag. */
export function parseBusUrl(value: string): BusAddress {
  const servers: string[] = [];
  const shown: string[] = [];
  let auth: BusAddress['auth'] = null;
  let tls = false;
  for (const part of value.split(',').map((s) => s.trim())) {
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      throw new SeedwireError('SEEDWIRE_CONFIG', `--bus: expected nats://host:port, got '${part.replace(/\/\/[^@/]*@/, '//***@')}'`);
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') throw new SeedwireError('SEEDWIRE_CONFIG', `--bus: scheme must be nats:// or tls://, got ${url.protocol}//`);
    if (url.hostname === '') throw new SeedwireError('SEEDWIRE_CONFIG', '--bus: the URL names no host');
    if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '') throw new SeedwireError('SEEDWIRE_CONFIG', '--bus: a NATS URL has no path or query');
    const port = url.port === '' ? '4222' : url.port;
    servers.push(`${url.hostname}:${port}`);
    shown.push(`${url.protocol}//${url.hostname}:${port}`);
    if (url.protocol === 'tls:') tls = true;
    if (url.username !== '') {
      const user = decodeURIComponent(url.username);
      auth = url.password === '' ? { token: user } : { user, pass: decodeURIComponent(url.password) };
    }
  }
  return { servers, shown: shown.join(','), auth, tls };
}

export interface BusLink {
  readonly address: BusAddress;
  /** The connection once it was first established (null before). */
  connection(): NatsConnection | null;
  /** Connected now (false before the first connect and while redialing). */
  connected(): boolean;
  /** Throws SEEDWIRE_BUS_UNAVAILABLE unless connected; returns the connection. */
  require(): NatsConnection;
  /** Called on the first connect and after every reconnect (subscriptions are restored by the client; this is for state the peers must hear again). */
  onConnected(listener: () => void): void;
  /**
   * Request/reply: publishes `data` to `subject` with a reply subject of this link's own inbox and
   * resolves with the first reply. Rejects with BusRequestError when nobody subscribes to
   * `subject` ('no-responders'), no reply comes within `timeoutMs` ('timeout') or the link closes
   * ('closed'); with SEEDWIRE_BUS_UNAVAILABLE when not connected.
   */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Msg>;
  close(): Promise<void>;
}

/** Why a bus request got no reply. */
export class BusRequestError extends Error {
  constructor(
    readonly reason: 'no-responders' | 'timeout' | 'closed',
    message: string,
  ) {
    super(message);
    this.name = 'BusRequestError';
  }
}

export interface BusLinkOptions {
  url: string;
  /** Shown to the NATS server (monitoring): the controller's id. */
  name: string;
  log: Logger;
  /** @default 1000 ms between redials */
  reconnectWaitMs?: number;
}

export function createBusLink(options: BusLinkOptions): BusLink {
  const address = parseBusUrl(options.url);
  const log = options.log.child({ bus: address.shown });
  const listeners: Array<() => void> = [];
  let nc: NatsConnection | null = null;
  let up = false;
  let closed = false;

  const connectOptions: ConnectionOptions = {
    servers: address.servers,
    name: options.name,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectWaitMs ?? 1000,
    // nats.js otherwise builds two Error objects (stack traces) per request for the case it times
    // out: 2% of a routing controller's busy time in a profile of routed operations, and our
    // own errors name what timed out (docs/scale-out.md, "Where a routed operation's time goes").
    noAsyncTraces: true,
    ...(address.tls ? { tls: {} } : {}),
    ...(address.auth === null ? {} : 'token' in address.auth ? { token: address.auth.token } : { user: address.auth.user, pass: address.auth.pass }),
  };

  function notify(): void {
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        log.error({ err: error }, 'bus connect listener threw');
      }
    }
  }

  async function watch(conn: NatsConnection): Promise<void> {
    for await (const status of conn.status()) {
      if (status.type === Events.Disconnect) {
        if (up) log.warn('bus disconnected; routing to other controllers fails until it is back');
        up = false;
      } else if (status.type === Events.Reconnect) {
        up = true;
        log.info('bus reconnected');
        notify();
      }
    }
  }

  let retry: NodeJS.Timeout | null = null;
  let firstFailureLogged = false;

  // Requests: one wildcard subscription on an inbox of this link's, replies matched by their last
  // token. nats.js's own request() does the same, but builds a NatsError (a stack trace) for every
  // request as it settles (5% of a routing controller's busy time in a profile; docs/scale-out.md,
  // "The routed operation, a third time").
  interface Pending {
    subject: string;
    resolve(msg: Msg): void;
    reject(error: Error): void;
    timer: NodeJS.Timeout;
  }
  const pending = new Map<string, Pending>();
  let inbox: string | null = null;
  let nextToken = 0;

  function repliesInbox(conn: NatsConnection): string {
    if (inbox !== null) return inbox;
    const prefix = createInbox();
    // Restored by the client after a reconnect, like every subscription.
    conn.subscribe(`${prefix}.*`, {
      callback: (error, msg) => {
        if (error) return;
        const token = msg.subject.slice(prefix.length + 1);
        const waiting = pending.get(token);
        if (waiting === undefined) return; // timed out meanwhile, or a second reply
        pending.delete(token);
        clearTimeout(waiting.timer);
        // The server's "no responders" status: an empty message with a 503 header.
        if (msg.data.length === 0 && msg.headers?.code === 503) waiting.reject(new BusRequestError('no-responders', `nobody on the cluster bus subscribes to ${waiting.subject}`));
        else waiting.resolve(msg);
      },
    });
    inbox = prefix;
    return prefix;
  }

  function requireConnection(): NatsConnection {
    if (!up || nc === null || nc.isClosed()) throw new SeedwireError('SEEDWIRE_BUS_UNAVAILABLE', `the cluster bus ${address.shown} is not connected; operations on agents of other controllers cannot be routed now`);
    return nc;
  }

  function adopt(conn: NatsConnection): void {
    nc = conn;
    up = true;
    log.info('bus connected');
    watch(conn).catch((error: unknown) => log.error({ err: error }, 'bus status watcher failed'));
    conn.closed().then(
      (error) => {
        up = false;
        if (error && !closed) log.error({ err: error }, 'bus connection closed');
      },
      () => undefined,
    );
    notify();
  }

  // The first dial is retried here rather than with the client's waitOnFirstConnect, whose pending
  // connect() could not be abandoned when the controller closes while NATS is still down.
  function dial(): void {
    retry = null;
    connect(connectOptions).then(
      (conn) => {
        if (closed) void conn.close().catch(() => undefined); // closed while dialing: nothing waits on it
        else adopt(conn);
      },
      (error: unknown) => {
        if (closed) return;
        if (!firstFailureLogged) log.warn({ err: error }, 'bus not reachable; retrying (this controller serves its own agents meanwhile)');
        firstFailureLogged = true;
        retry = setTimeout(dial, connectOptions.reconnectTimeWait);
      },
    );
  }
  dial();

  return {
    address,
    connection: () => nc,
    connected: () => up && nc !== null && !nc.isClosed(),
    require: requireConnection,
    onConnected(listener) {
      listeners.push(listener);
    },
    async request(subject, data, timeoutMs) {
      const conn = requireConnection();
      const token = (nextToken++).toString(36);
      const reply = `${repliesInbox(conn)}.${token}`;
      return new Promise<Msg>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(token);
          reject(new BusRequestError('timeout', `no reply on ${subject} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(token, { subject, resolve, reject, timer });
        try {
          conn.publish(subject, data, { reply });
        } catch (error) {
          clearTimeout(timer);
          pending.delete(token);
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      up = false;
      for (const waiting of pending.values()) {
        clearTimeout(waiting.timer);
        waiting.reject(new BusRequestError('closed', 'the cluster bus connection closed'));
      }
      pending.clear();
      const conn = nc;
      if (retry !== null) clearTimeout(retry);
      if (conn === null) return;
      try {
        await conn.drain();
      } catch {
        await conn.close().catch(() => undefined);
      }
    },
  };
}
