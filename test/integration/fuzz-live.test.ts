/**
 * A bounded, reproducible fuzz run (fixed seeds, fixed counts) of random and mutated frames
 * against live processes: the real controller (as an authenticated agent connection, and before
 * the hello) and the real agent (through the fake controller side it dials). Neither may crash,
 * their RSS stays within a stated bound, and a well-behaved agent keeps answering `hostname`
 * operations through the HTTP API during the run and after it.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import WebSocket from 'ws';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ALL_OP_PARAMS } from '../../shared/ops.js';
import type { Frame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startControllerSide, type AgentConnection, type ControllerSide } from '../helpers/agent-controller-side.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { TestPeer } from '../helpers/controller-peer.js';
import { frameArb, hostileBinaryArb, hostileTextArb, hostileValueArb } from '../helpers/frame-arbitraries.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'fuzz-live-token';
const STEADY = 'steady-agent-7';
const SEED = 0xf022;
/** RSS may grow by at most this much over its level before the fuzz run (MiB). */
const RSS_GROWTH_BOUND_MIB = 150;

function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** The deterministic sequence of hostile payloads: mostly text frames, some binary, a few oversized. */
function hostileSequence(seed: number, count: number, avoidIds: string[]): Array<string | Buffer> {
  const item = fc.oneof(
    { weight: 14, arbitrary: hostileTextArb(avoidIds) },
    { weight: 3, arbitrary: hostileBinaryArb },
    // Calls of every real operation with arbitrary params (the agent has no mysql or snapshot section).
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom(...Object.keys(ALL_OP_PARAMS)), fc.dictionary(fc.string({ maxLength: 10 }), hostileValueArb, { maxKeys: 4 }), fc.nat())
        .map(([op, params, n]) => JSON.stringify({ t: 'call', id: `fz-${n}`, op, params })),
    },
    { weight: 1, arbitrary: frameArb(avoidIds).map((frame) => JSON.stringify(frame)) },
  );
  return fc.sample(item, { seed, numRuns: count });
}

/** Frames just under the size limit. */
const NEAR_LIMIT = [JSON.stringify({ t: 'output', id: 'big', seq: 0, stream: 'stdout', data: 'x'.repeat(LIMITS.maxMessageBytes - 100) }), Buffer.alloc(LIMITS.maxMessageBytes - 100, 0x53)];
/** Frames over the limit: ws closes the connection with 1009, so each is sent on a connection of its own. */
const OVERSIZED = ['y'.repeat(LIMITS.maxMessageBytes + 1), Buffer.alloc(LIMITS.maxMessageBytes + 1, 0x53)];

/** A raw client connection; resolves once open, or with the refusal's status. */
function dial(url: string, token: string): Promise<{ ws: WebSocket } | { status: number; retryAfter: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    ws.on('error', () => undefined);
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, retryAfter: Number(res.headers['retry-after'] ?? 1) });
      res.resume();
      ws.terminate();
    });
    ws.once('close', () => reject(new Error('closed before open')));
  });
}

/** Dials until admitted (waiting out 503 + Retry-After). */
async function dialAdmitted(url: string, token: string): Promise<WebSocket> {
  for (;;) {
    const outcome = await dial(url, token);
    if ('ws' in outcome) return outcome.ws;
    if (outcome.status !== 503) throw new Error(`upgrade refused with HTTP ${outcome.status}`);
    await new Promise((resolve) => setTimeout(resolve, outcome.retryAfter * 1_000));
  }
}

/** Sends a ping and waits for its pong: the peer processed everything sent before it. */
function roundTrip(ws: WebSocket, ts: number, timeoutMs = 30_000): Promise<boolean> {
  return new Promise((resolve) => {
    if (ws.readyState !== WebSocket.OPEN) return resolve(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (isBinary) return;
      try {
        const frame = JSON.parse(data.toString()) as Frame;
        if (frame.t === 'pong' && frame.ts === ts) done(true);
      } catch {
        // not ours
      }
    };
    const onClose = (): void => done(false);
    function done(ok: boolean): void {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      resolve(ok);
    }
    ws.on('message', onMessage);
    ws.once('close', onClose);
    ws.send(JSON.stringify({ t: 'ping', ts }));
  });
}

afterEach(async () => {
  await stopAllAgents();
});

afterAll(async () => {
  await stopAllControllers();
});

describe('fuzzing a live controller', () => {
  let controller: RunningController | undefined;
  afterAll(() => controller?.cleanup());

  it('survives random and mutated frames from an authenticated agent and before the hello; a steady agent keeps answering', async () => {
    controller = await startController({ agentToken: TOKEN });
    const c = controller;
    const pid = c.process.pid!;
    startAgent({ controllerUrl: c.wsUrl, token: TOKEN, id: STEADY });
    await waitFor(async () => ((await (await c.api('GET', `/api/agents/${STEADY}`)).json()) as { connected?: boolean }).connected === true, {
      timeoutMs: 30_000,
      what: 'the steady agent',
    });
    const baseline = rssMiB(pid);
    let peak = baseline;

    // The steady agent answers hostname ops all through the run.
    let fuzzing = true;
    const steadyOps: string[] = [];
    const steady = (async () => {
      while (fuzzing) {
        const res = await c.api('POST', `/api/agents/${STEADY}/ops/hostname?wait=30`);
        const body = (await res.json()) as { operation?: { state: string; error: unknown } };
        steadyOps.push(body.operation?.state === 'succeeded' ? 'ok' : JSON.stringify(body));
        peak = Math.max(peak, rssMiB(pid));
      }
    })();

    // 1. An authenticated agent connection sends 2,000 hostile payloads (redialing when closed).
    //    Every 100 payloads the API calls it, and it answers with a hostile result.
    const payloads = hostileSequence(SEED, 2_000, [STEADY]);
    const results = [
      '['.repeat(5_000) + ']'.repeat(5_000),
      ...fc.sample(hostileValueArb, { seed: SEED + 3, numRuns: 19 }).map((value) => JSON.stringify(value) ?? 'null'),
    ];
    // The fuzzer enrolls on its first connection; its redials present that credential, as an agent would.
    const credentials = new Map<string, string>();
    let fuzzer = new TestPeer({ url: c.wsUrl, token: TOKEN, agentId: 'fuzzer-1', credentials });
    await fuzzer.connect();
    let redials = 0;
    const hostileResultOps: string[] = [];
    for (let i = 0; i < payloads.length; i++) {
      if (fuzzer.ws.readyState !== WebSocket.OPEN) {
        redials++;
        fuzzer = new TestPeer({ url: c.wsUrl, token: TOKEN, agentId: 'fuzzer-1', credentials });
        await fuzzer.connect();
      }
      fuzzer.ws.send(payloads[i]!);
      if (i % 100 === 99) {
        await roundTrip(fuzzer.ws, 1e12 + i);
        if (fuzzer.ws.readyState === WebSocket.OPEN) {
          const res = await c.api('POST', '/api/agents/fuzzer-1/ops/hostname?wait=0');
          hostileResultOps.push(((await res.json()) as { operation: { id: string } }).operation.id);
          const call = await fuzzer.next((f) => f.t === 'call', 20_000).catch(() => null);
          if (call?.t === 'call') fuzzer.sendRaw(`{"t":"result","id":"${call.id}","result":${results[(i / 100) | 0] ?? 'null'},"durationMs":1}`);
        }
        peak = Math.max(peak, rssMiB(pid));
      }
    }
    for (const payload of NEAR_LIMIT) fuzzer.ws.send(payload);
    expect(await roundTrip(fuzzer.ws, 2e12)).toBe(true);
    await fuzzer.close();
    for (const payload of OVERSIZED) {
      const big = new TestPeer({ url: c.wsUrl, token: TOKEN, agentId: 'fuzzer-1', credentials });
      await big.connect();
      big.sendRaw(payload);
      expect((await big.closed).code).toBe(1009);
    }

    // 2. 50 connections that send hostile frames instead of (or before) a hello.
    const preHello = hostileSequence(SEED + 1, 150, [STEADY]);
    for (let n = 0; n < 50; n++) {
      const raw = await dialAdmitted(c.wsUrl, TOKEN);
      for (const payload of preHello.slice(n * 3, n * 3 + 3)) if (raw.readyState === WebSocket.OPEN) raw.send(payload);
      // Before a hello a ping is refused and the connection closed; after a lucky valid hello it is answered.
      await roundTrip(raw, 3e12 + n, 10_000);
      raw.terminate();
    }
    peak = Math.max(peak, rssMiB(pid));

    fuzzing = false;
    await steady;
    // The controller is alive, answers, and the steady agent was never disturbed.
    expect(c.process.exitCode).toBeNull();
    expect(c.process.signalCode).toBeNull();
    expect(steadyOps.length).toBeGreaterThan(0);
    expect(steadyOps.filter((s) => s !== 'ok')).toEqual([]);
    const after = (await (await c.api('POST', `/api/agents/${STEADY}/ops/hostname?wait=30`)).json()) as { operation: { state: string } };
    expect(after.operation.state).toBe('succeeded');
    const agent = (await (await c.api('GET', `/api/agents/${STEADY}`)).json()) as { connected: boolean };
    expect(agent.connected).toBe(true);
    console.log(`[fuzz] controller: ${payloads.length} + ${preHello.length} pre-hello payloads, ${redials} redials, ${steadyOps.length} steady ops; RSS ${baseline.toFixed(0)} -> peak ${peak.toFixed(0)} MiB`);
    expect(peak - baseline).toBeLessThanOrEqual(RSS_GROWTH_BOUND_MIB);
    // Each op answered with a hostile result either stored it or is still waiting (the result was refused).
    for (const id of hostileResultOps) {
      const op = (await (await c.api('GET', `/api/operations/${id}`)).json()) as { state: string };
      expect(['succeeded', 'running', 'failed']).toContain(op.state);
    }
    // A handler that threw (rather than refusing with a typed error) is logged at error level.
    expect(c.logs.filter((r) => (r.level ?? 0) >= 50).map((r) => r.msg)).toEqual([]);
  }, 240_000);
});

describe('fuzzing a live agent', () => {
  let side: ControllerSide | undefined;
  afterAll(async () => side?.close());

  it('survives random and mutated frames from its controller, keeps answering hostname calls, RSS bounded', async () => {
    side = await startControllerSide({ token: TOKEN });
    const s = side;
    const agent = startAgent({ controllerUrl: s.url, token: TOKEN, id: 'fuzzed-agent' });
    const pid = agent.child.pid!;
    let conn: AgentConnection = await s.connections.waitFor(() => true, { timeoutMs: 20_000, what: 'the agent' });
    await conn.waitFrame('hello');
    await conn.waitFrame('facts');
    const baseline = rssMiB(pid);
    let peak = baseline;
    let reconnects = 0;

    /** A hostname call answered on the current connection; when the fuzz made the agent drop it, on the one it redials. */
    async function expectHostname(n: number): Promise<void> {
      for (let attempt = 0; attempt < 5; attempt++) {
        if (conn.ws.readyState !== WebSocket.OPEN) {
          reconnects++;
          conn = await s.connections.waitFor((candidate) => candidate.ws.readyState === WebSocket.OPEN, { timeoutMs: 20_000, what: 'the agent redialing' });
          await conn.waitFrame('hello');
        }
        const id = `steady-${n}-${attempt}`;
        conn.send({ t: 'call', id, op: 'hostname', params: {} });
        const result = await Promise.race([conn.waitFrame('result', (f) => f.id === id, 30_000).catch(() => null), conn.closed.then(() => null)]);
        if (result) {
          expect(result.result).toEqual({ hostname: expect.any(String) });
          return;
        }
        // No answer on a connection that is still open is a failure; a closed one is redialed.
        expect(conn.ws.readyState).not.toBe(WebSocket.OPEN);
      }
      throw new Error(`no hostname answer after 5 connections (call ${n})`);
    }

    const payloads = hostileSequence(SEED + 2, 2_000, []);
    for (let i = 0; i < payloads.length; i++) {
      if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(payloads[i]!);
      if (i % 100 === 99) {
        await expectHostname(i);
        peak = Math.max(peak, rssMiB(pid));
      }
    }
    for (const payload of [...NEAR_LIMIT, ...OVERSIZED]) {
      if (conn.ws.readyState === WebSocket.OPEN) conn.ws.send(payload);
      await expectHostname(payloads.length + payload.length);
    }
    await expectHostname(payloads.length);
    peak = Math.max(peak, rssMiB(pid));
    expect(agent.child.exitCode).toBeNull();
    expect(agent.child.signalCode).toBeNull();
    expect(agent.logs.items.filter((l) => l.level >= 50).map((l) => `${l.msg} ${JSON.stringify(l['err'] ?? '')}`)).toEqual([]);
    console.log(`[fuzz] agent: ${payloads.length} payloads, ${reconnects} reconnects; RSS ${baseline.toFixed(0)} -> peak ${peak.toFixed(0)} MiB`);
    expect(peak - baseline).toBeLessThanOrEqual(RSS_GROWTH_BOUND_MIB);
  }, 240_000);
});
