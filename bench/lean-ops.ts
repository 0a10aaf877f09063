/**
 * The bench's client for the operations it times: `POST /api/agents/:id/ops/:op?wait=N` and plain
 * GETs, written as HTTP/1.1 by hand on kept-alive TCP sockets and read back with a parser of only
 * what the controller sends (a status line, headers, a `content-length` body).
 *
 * Why not a general client: on this 2-core machine the client's CPU is taken from the processes
 * being measured. The API client's fetch spent 0.7–1.5 ms of CPU per call, node:http 0.57–0.75 ms
 * (bench/cluster-breakdown.ts prints what each costs, beside the same operations through fetch),
 * and every millisecond of it lands between the hops of the operation being timed. Latency figures
 * are the controller's and agent's, so they are timed with the leanest client that still speaks
 * real HTTP to the real server; everything else in the bench uses the API client.
 */
import { connect, type Socket } from 'node:net';
import type { Operation } from '../server-stub/ops/types.js';

export interface OpRunner {
  runOp(agentId: string, op: string, params?: Record<string, unknown>, options?: { wait?: number }): Promise<Operation>;
}

export interface LeanOps extends OpRunner {
  /** GET `path`; resolves with the status once the whole body is read. */
  get(path: string): Promise<number>;
  close(): void;
}

interface Response {
  status: number;
  body: string;
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Reads one response from `chunks` (bytes received so far), or null when it is not complete yet.
 * Returns the response and the bytes after it. Only `content-length` bodies (what fastify sends
 * for JSON); anything else is an error naming what was seen.
 */
export function readResponse(received: Buffer): { response: Response; rest: Buffer; close: boolean } | null {
  const end = received.indexOf(HEADER_END);
  if (end < 0) return null;
  const head = received.subarray(0, end).toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!status) throw new Error(`not an HTTP/1.x status line: ${JSON.stringify(head[0]?.slice(0, 80))}`);
  let length: number | null = null;
  let close = false;
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') length = Number(value);
    else if (name === 'transfer-encoding') throw new Error(`transfer-encoding ${value}: the bench's client reads content-length bodies only`);
    else if (name === 'connection' && value.toLowerCase() === 'close') close = true;
  }
  if (length === null || !Number.isInteger(length) || length < 0) throw new Error(`response ${status[1]} without a usable content-length`);
  const bodyStart = end + HEADER_END.length;
  if (received.length < bodyStart + length) return null;
  return {
    response: { status: Number(status[1]), body: received.subarray(bodyStart, bodyStart + length).toString('utf8') },
    rest: received.subarray(bodyStart + length),
    close,
  };
}

export function createLeanOps(baseUrl: string, token: string): LeanOps {
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:') throw new Error(`lean-ops: http:// only, got ${baseUrl}`);
  const host = url.hostname;
  const port = Number(url.port || 80);
  const prefix = url.pathname.replace(/\/+$/, '');
  const fixedHeaders = `Host: ${url.host}\r\nAuthorization: Bearer ${token}\r\nAccept: application/json\r\n`;
  const idle: Socket[] = [];
  const open = new Set<Socket>();
  let closed = false;

  function send(request: string): Promise<Response> {
    if (closed) return Promise.reject(new Error('lean-ops: closed'));
    const socket =
      idle.pop() ??
      (() => {
        const s = connect({ host, port, noDelay: true });
        open.add(s);
        // A kept-alive socket the server resets while idle must not throw: its 'close' drops it.
        s.on('error', () => undefined);
        s.once('close', () => {
          open.delete(s);
          const at = idle.indexOf(s);
          if (at >= 0) idle.splice(at, 1);
        });
        return s;
      })();
    return new Promise<Response>((resolve, reject) => {
      let received: Buffer = Buffer.alloc(0);
      const done = (error: Error | null, response?: Response, keep = false): void => {
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('close', onClose);
        if (error) {
          socket.destroy();
          reject(error);
          return;
        }
        if (keep && !closed) idle.push(socket);
        else socket.destroy();
        resolve(response!);
      };
      const onData = (chunk: Buffer): void => {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        let read;
        try {
          read = readResponse(received);
        } catch (error) {
          done(error as Error);
          return;
        }
        if (read === null) return;
        if (read.rest.length > 0) done(new Error(`lean-ops: ${read.rest.length} bytes after the response`));
        else done(null, read.response, !read.close);
      };
      const onError = (error: Error): void => done(error);
      const onClose = (): void => done(new Error('lean-ops: the connection closed before the whole response'));
      socket.on('data', onData);
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.write(request);
    });
  }

  return {
    async runOp(agentId, op, params = {}, options = {}) {
      const body = JSON.stringify({ params });
      const path = `${prefix}/api/agents/${encodeURIComponent(agentId)}/ops/${encodeURIComponent(op)}?wait=${options.wait ?? 60}`;
      const { status, body: text } = await send(`POST ${path} HTTP/1.1\r\n${fixedHeaders}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      let answer: { operation?: Operation; error?: { code?: string; message?: string } };
      try {
        answer = JSON.parse(text) as typeof answer;
      } catch {
        throw new Error(`POST ${path}: ${status}, not JSON: ${text.slice(0, 200)}`);
      }
      if (status < 300 && answer.operation) return answer.operation;
      throw new Error(`POST ${path}: ${status} ${answer.error?.code ?? ''} ${answer.error?.message ?? text.slice(0, 200)}`);
    },
    async get(path) {
      const { status } = await send(`GET ${prefix}${path} HTTP/1.1\r\n${fixedHeaders}\r\n`);
      return status;
    },
    close() {
      closed = true;
      for (const socket of open) socket.destroy();
      idle.length = 0;
    },
  };
}
