/**
 * A real TCP proxy for fault injection: forwards to `target`, and on demand black-holes traffic
 * (sockets stay open, nothing passes — what a dead NAT mapping looks like), or only what the
 * target sends back (`blackhole-down`: the client's bytes arrive, no answer comes), cuts every
 * connection, or refuses new ones. It counts the client's bytes forwarded and swallowed.
 */
import net from 'node:net';

export type ProxyMode = 'forward' | 'blackhole' | 'blackhole-down' | 'refuse';

export interface TcpProxy {
  port: number;
  url(path?: string, scheme?: string): string;
  setMode(mode: ProxyMode): void;
  /** Destroys every open connection (both legs). */
  cut(): void;
  /** Destroys every open connection but the `keep` oldest (an agent's control link is its first; its data connections come later). */
  cutAllBut(keep: number): void;
  readonly connections: number;
  readonly bytesForwarded: number;
  /** The clients' bytes forwarded to the target. */
  readonly bytesUp: number;
  /** The clients' bytes swallowed by a black hole. */
  readonly bytesSwallowedUp: number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: ProxyMode = 'forward';
  let bytesForwarded = 0;
  let bytesUp = 0;
  let bytesSwallowedUp = 0;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  /** Legs whose peer closed while the link was black-holed. */
  const orphans = new Set<net.Socket>();

  const server = net.createServer((client) => {
    if (mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair = { client, upstream };
    pairs.add(pair);
    const pipe = (from: net.Socket, to: net.Socket, up: boolean): void => {
      from.on('data', (chunk: Buffer) => {
        if (mode === 'blackhole' || (mode === 'blackhole-down' && !up)) {
          if (up) bytesSwallowedUp += chunk.length;
          return; // swallowed: the peer sees silence, not a close
        }
        bytesForwarded += chunk.length;
        if (up) bytesUp += chunk.length;
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
    };
    pipe(client, upstream, true);
    pipe(upstream, client, false);
    // A black hole swallows closes too: a dead path delivers no FIN or RST, so the surviving leg
    // stays open until its own side gives up (or the test cuts it). Forwarding a close would let
    // one side's timeout end the other side's connection before that side noticed the silence.
    const end = (closed: net.Socket, other: net.Socket): void => {
      if (!pairs.delete(pair)) {
        orphans.delete(closed);
        return;
      }
      closed.destroy();
      // The orphan's own close comes back here and forgets it.
      if (mode === 'blackhole' && !other.destroyed) orphans.add(other);
      else other.destroy();
    };
    client.on('error', () => end(client, upstream)).on('close', () => end(client, upstream));
    upstream.on('error', () => end(upstream, client)).on('close', () => end(upstream, client));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const cut = (): void => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
    for (const socket of orphans) socket.destroy();
    orphans.clear();
  };
  const cutAllBut = (keep: number): void => {
    for (const pair of [...pairs].slice(keep)) {
      pair.client.destroy();
      pair.upstream.destroy();
      pairs.delete(pair);
    }
  };
  return {
    port,
    url: (path = '/agent', scheme = 'ws') => `${scheme}://127.0.0.1:${port}${path}`,
    setMode(next) {
      mode = next;
    },
    cut,
    cutAllBut,
    get connections() {
      return pairs.size;
    },
    get bytesForwarded() {
      return bytesForwarded;
    },
    get bytesUp() {
      return bytesUp;
    },
    get bytesSwallowedUp() {
      return bytesSwallowedUp;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
