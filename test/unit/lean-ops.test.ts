import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createLeanOps, readResponse } from '../../bench/lean-ops.js';

describe('the bench lean client: readResponse', () => {
  it('reads a content-length response and returns what follows it', () => {
    const wire = Buffer.from('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}HTTP/1.1');
    const read = readResponse(wire);
    expect(read?.response).toEqual({ status: 200, body: '{"a":1}' });
    expect(read?.rest.toString()).toBe('HTTP/1.1');
    expect(read?.close).toBe(false);
  });

  it('waits for the rest of the headers and of the body', () => {
    expect(readResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n'))).toBeNull();
    expect(readResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a"'))).toBeNull();
  });

  it('refuses what it cannot read, naming it', () => {
    expect(() => readResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'))).toThrow(/transfer-encoding chunked/);
    expect(() => readResponse(Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'))).toThrow(/without a usable content-length/);
    expect(() => readResponse(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toThrow(/not an HTTP\/1.x status line/);
  });
});

describe('the bench lean client against a real HTTP server', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = null;
  });

  async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
    server = createServer(handler);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    return `http://127.0.0.1:${address.port}`;
  }

  it('posts an operation with the token and keeps one socket across calls', async () => {
    const seen: Array<{ url: string; auth: string | undefined; body: string; socket: unknown }> = [];
    const base = await serve((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', auth: req.headers.authorization, body, socket: req.socket });
        const payload = JSON.stringify({ operation: { id: `op-${seen.length}`, state: 'succeeded', result: { hostname: 'h' } } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
        res.end(payload);
      });
    });
    const ops = createLeanOps(base, 'tok');
    try {
      const first = await ops.runOp('agent 1', 'hostname', { x: 1 }, { wait: 30 });
      const second = await ops.runOp('a2', 'hostname');
      expect([first.id, second.id]).toEqual(['op-1', 'op-2']);
      expect(seen[0]).toMatchObject({ url: '/api/agents/agent%201/ops/hostname?wait=30', auth: 'Bearer tok', body: '{"params":{"x":1}}' });
      expect(seen[1]!.url).toBe('/api/agents/a2/ops/hostname?wait=60');
      expect(seen[1]!.socket).toBe(seen[0]!.socket);
      expect(await ops.get('/healthz')).toBe(200);
    } finally {
      ops.close();
    }
  });

  it('rejects with the status and the error the controller sent', async () => {
    const base = await serve((_req, res) => {
      const payload = JSON.stringify({ error: { code: 'SEEDWIRE_AGENT_OFFLINE', message: 'agent a is not connected' } });
      res.writeHead(409, { 'content-length': Buffer.byteLength(payload) });
      res.end(payload);
    });
    const ops = createLeanOps(base, 'tok');
    try {
      await expect(ops.runOp('a', 'hostname')).rejects.toThrow(/409 SEEDWIRE_AGENT_OFFLINE agent a is not connected/);
      expect(await ops.get('/x')).toBe(409);
    } finally {
      ops.close();
    }
  });

  it('opens a new socket after the server closed the last one', async () => {
    const sockets = new Set<unknown>();
    const base = await serve((req, res) => {
      sockets.add(req.socket);
      res.writeHead(200, { 'content-length': 2, connection: 'close' });
      res.end('{}');
    });
    const ops = createLeanOps(base, 'tok');
    try {
      expect(await ops.get('/a')).toBe(200);
      expect(await ops.get('/b')).toBe(200);
      expect(sockets.size).toBe(2);
    } finally {
      ops.close();
    }
  });
});
