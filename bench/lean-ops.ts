/**
 * The bench's client for the operations it times: `POST /api/agents/:id/ops/:op?wait=N` over
 * node:http on one kept-alive socket. The API client (client/api.ts) uses fetch, whose own work in
 * the bench process was 0.7–1.5 ms of CPU per call on this 2-core machine, against 0.6–0.8 ms
 * here, and its p50 0.5–0.9 ms higher for the same operation on the same controller
 * (bench/cluster-breakdown.ts prints both): on two cores the client's CPU is taken from the
 * processes being measured. Latency figures are the controller's and agent's, so they are timed
 * with the leaner client; everything else in the bench uses the API client.
 */
import { Agent, request } from 'node:http';
import type { Operation } from '../server-stub/ops/types.js';

export interface OpRunner {
  runOp(agentId: string, op: string, params?: Record<string, unknown>, options?: { wait?: number }): Promise<Operation>;
}

export interface LeanOps extends OpRunner {
  /** GET `path`; resolves with the status once the whole body is read. */
  get(path: string): Promise<number>;
  close(): void;
}

export function createLeanOps(baseUrl: string, token: string): LeanOps {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const base = baseUrl.replace(/\/+$/, '');
  return {
    runOp(agentId, op, params = {}, options = {}) {
      const body = JSON.stringify({ params });
      const path = `${base}/api/agents/${encodeURIComponent(agentId)}/ops/${encodeURIComponent(op)}?wait=${options.wait ?? 60}`;
      return new Promise<Operation>((resolve, reject) => {
        const req = request(path, { method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), accept: 'application/json' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let answer: { operation?: Operation; error?: { code?: string; message?: string } };
            try {
              answer = JSON.parse(text) as typeof answer;
            } catch {
              reject(new Error(`POST ${path}: ${res.statusCode}, not JSON: ${text.slice(0, 200)}`));
              return;
            }
            if (res.statusCode !== undefined && res.statusCode < 300 && answer.operation) resolve(answer.operation);
            else reject(new Error(`POST ${path}: ${res.statusCode} ${answer.error?.code ?? ''} ${answer.error?.message ?? text.slice(0, 200)}`));
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    },
    get(path) {
      return new Promise<number>((resolve, reject) => {
        const req = request(`${base}${path}`, { agent, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }, (res) => {
          res.on('data', () => undefined);
          res.on('error', reject);
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}
