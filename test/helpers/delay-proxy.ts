/**
 * A long link in userspace (this kernel has no netem): a TCP forwarder that holds every chunk for
 * a fixed one-way delay in each direction (so a round trip through it takes 2 × delay more), in
 * order, and can stall: hold everything for a while, as a congested or flapping path does. The
 * bytes held per direction are bounded (the reading side pauses), so it never buffers without
 * limit; the bound must exceed rate × delay or the proxy itself becomes the bottleneck.
 */
import net from 'node:net';

export interface DelayProxyOptions {
  target: { host: string; port: number };
  /** Address to listen on. @default 127.0.0.1 */
  listen?: string;
  /** One-way delay added in each direction. */
  delayMs: number;
  /** Bytes held per direction before reading pauses. @default 32 MiB */
  maxHeldBytes?: number;
  /** A stall of `stallMs` starts every `stallEveryMs` (both directions held); off unless both are set. */
  stallEveryMs?: number;
  stallMs?: number;
}

export interface DelayProxy {
  port: number;
  address: string;
  readonly connections: number;
  readonly bytesForwarded: number;
  readonly stalls: number;
  close(): Promise<void>;
}

/** A chunk and when it may go on; `null` is the half-close, delayed like the data before it. */
interface Held {
  due: number;
  chunk: Buffer | null;
}

export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const maxHeld = options.maxHeldBytes ?? 32 * 1024 * 1024;
  let bytesForwarded = 0;
  let stalls = 0;
  let stalledUntil = 0;
  const sockets = new Set<net.Socket>();
  const rescheduleAll = new Set<() => void>();

  /** Forwards `from` → `to`, each chunk released `delayMs` after it arrived (later while stalled); returns its disposer. */
  const pipe = (from: net.Socket, to: net.Socket): (() => void) => {
    const queue: Held[] = [];
    let held = 0;
    let blocked = false;
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const schedule = (): void => {
      if (blocked || timer || queue.length === 0) return;
      const wait = Math.max(queue[0]!.due, stalledUntil) - Date.now();
      timer = setTimeout(release, Math.max(0, wait));
    };
    const release = (): void => {
      timer = undefined;
      if (to.destroyed) {
        queue.length = 0;
        return;
      }
      const now = Date.now();
      if (now >= stalledUntil) {
        while (queue.length > 0 && queue[0]!.due <= now) {
          const { chunk } = queue.shift()!;
          if (chunk === null) {
            to.end();
            return;
          }
          held -= chunk.length;
          bytesForwarded += chunk.length;
          if (!to.write(chunk)) {
            // the next hop is slower than the link: hold until it drains
            blocked = true;
            to.once('drain', () => {
              blocked = false;
              release();
            });
            break;
          }
        }
        if (held < maxHeld / 2 && from.isPaused()) from.resume();
      }
      schedule();
    };
    const reschedule = (): void => {
      clearTimeout(timer);
      timer = undefined;
      schedule();
    };
    rescheduleAll.add(reschedule);
    from.on('data', (chunk: Buffer) => {
      queue.push({ due: Date.now() + options.delayMs, chunk });
      held += chunk.length;
      if (held >= maxHeld) from.pause();
      schedule();
    });
    // A close without an end (the peer vanished) ends the other side too, after the data before it.
    const finish = (): void => {
      if (ended) return;
      ended = true;
      queue.push({ due: Date.now() + options.delayMs, chunk: null });
      schedule();
    };
    from.on('end', finish);
    from.on('close', finish);
    return () => {
      clearTimeout(timer);
      rescheduleAll.delete(reschedule);
    };
  };

  // Half-open both ways: each direction's end is forwarded by its own pipe, after its delayed data.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: options.target.port, host: options.target.host, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    const disposers = [pipe(client, upstream), pipe(upstream, client)];
    // An error (a reset) ends both at once; a close waits for the other direction's delayed bytes.
    const abort = (): void => {
      client.destroy();
      upstream.destroy();
    };
    const closed = (socket: net.Socket): void => {
      sockets.delete(socket);
      if (!sockets.has(client) && !sockets.has(upstream)) for (const dispose of disposers) dispose();
    };
    client.on('error', abort).on('close', () => closed(client));
    upstream.on('error', abort).on('close', () => closed(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, options.listen ?? '127.0.0.1', resolve));
  const { port, address } = server.address() as net.AddressInfo;

  let stallTimer: NodeJS.Timeout | undefined;
  if (options.stallEveryMs !== undefined && options.stallMs !== undefined) {
    const stallMs = options.stallMs;
    stallTimer = setInterval(() => {
      stalls += 1;
      stalledUntil = Date.now() + stallMs;
      for (const reschedule of rescheduleAll) reschedule();
    }, options.stallEveryMs);
  }

  return {
    port,
    address,
    get connections() {
      return sockets.size / 2;
    },
    get bytesForwarded() {
      return bytesForwarded;
    },
    get stalls() {
      return stalls;
    },
    async close() {
      clearInterval(stallTimer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
