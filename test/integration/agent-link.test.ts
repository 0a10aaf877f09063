import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Frame } from '../../shared/frames.js';
import { makeTempDir, spawnAgentCli, startAgent, stopAllAgents } from '../helpers/agent.js';
import { startControllerSide, type AgentConnection, type ControllerSide } from '../helpers/agent-controller-side.js';
import { waitFor } from '../helpers/wait.js';
import { isAlive } from '../helpers/checks.js';

const TOKEN = 'test-token-5f2c';
const peers = new Set<ControllerSide>();

async function startPeer(options: Parameters<typeof startControllerSide>[0] = {}): Promise<ControllerSide> {
  const peer = await startControllerSide({ token: TOKEN, ...options });
  peers.add(peer);
  return peer;
}

async function closePeer(peer: ControllerSide): Promise<void> {
  peers.delete(peer);
  await peer.close();
}


function makeFifo(dir: string, name: string): string {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  return path;
}

function outputText(conn: AgentConnection, id: string): string {
  return conn.frames.items
    .filter((f): f is Extract<Frame, { t: 'output' }> => f.t === 'output' && f.id === id)
    .map((f) => f.data)
    .join('');
}

afterEach(async () => {
  await stopAllAgents();
  for (const peer of peers) await peer.close();
  peers.clear();
});

describe('seedwire-agent against a controller peer', () => {
  it('dials out with the bearer header, says hello, answers hostname, and exits 0 on SIGTERM', async () => {
    const peer = await startPeer();
    const agent = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-a' });
    const conn = await peer.connections.waitFor(() => true, { what: 'a connection' });
    expect(conn.request.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(conn.request.url).toBe('/agent');
    expect(conn.request.url).not.toContain(TOKEN);

    const hello = await conn.waitFrame('hello');
    expect(hello).toMatchObject({ agentId: 'agent-a', pending: [], running: [], datacenter: null });
    expect(hello.capabilities).toEqual(expect.arrayContaining(['hostname', 'facts', 'custom-command', 'exec']));
    await conn.waitFrame('facts');

    conn.send({ t: 'call', id: 'c-host', op: 'hostname', params: {} });
    const result = await conn.waitFrame('result', (f) => f.id === 'c-host');
    expect(result.result).toEqual({ hostname: expect.any(String) });

    const { code } = await agent.stop();
    expect(code).toBe(0);
    expect(agent.logs.items.map((l) => JSON.stringify(l)).join('\n')).not.toContain(TOKEN);
  });

  it('refuses unknown ops, bad params and missing config sections with registry codes', async () => {
    const peer = await startPeer();
    startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-b' });
    const conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    conn.send({ t: 'call', id: 'c-unknown', op: 'no-such-op', params: {} });
    conn.send({ t: 'call', id: 'c-params', op: 'custom-command', params: { name: 5 } });
    conn.send({ t: 'call', id: 'c-exec', op: 'exec', params: { command: 'true' } });
    conn.send({ t: 'call', id: 'c-custom', op: 'custom-command', params: { name: 'nope' } });
    expect(await conn.waitFrame('error', (f) => f.id === 'c-unknown')).toMatchObject({ code: 'SEEDWIRE_OP_UNKNOWN' });
    expect(await conn.waitFrame('error', (f) => f.id === 'c-params')).toMatchObject({ code: 'SEEDWIRE_BAD_PARAMS', message: expect.stringContaining('name') });
    expect(await conn.waitFrame('error', (f) => f.id === 'c-exec')).toMatchObject({ code: 'SEEDWIRE_OP_REFUSED', message: expect.stringContaining('allowArbitraryCommands') });
    expect(await conn.waitFrame('error', (f) => f.id === 'c-custom')).toMatchObject({ code: 'SEEDWIRE_OP_REFUSED' });
  });

  it('streams a custom command’s output while it still runs', async () => {
    const dir = makeTempDir();
    const fifo = makeFifo(dir, 'gate');
    const peer = await startPeer();
    startAgent({
      controllerUrl: peer.url,
      token: TOKEN,
      id: 'agent-c',
      config: { customCommands: { gated: `echo first line; read word < ${fifo}; echo "second $word"; exit 3` } },
    });
    const conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    conn.send({ t: 'call', id: 'c-gated', op: 'custom-command', params: { name: 'gated' } });

    const first = await conn.waitFrame('output', (f) => f.id === 'c-gated');
    expect(first).toMatchObject({ seq: 0, stream: 'stdout', data: 'first line\n' });
    // the command cannot end before the test writes to the fifo
    expect(conn.frames.items.some((f) => f.t === 'result' && f.id === 'c-gated')).toBe(false);

    await writeFile(fifo, 'go\n');
    const result = await conn.waitFrame('result', (f) => f.id === 'c-gated');
    expect(result).toMatchObject({ result: { exitCode: 3 }, exitCode: 3 });
    expect(outputText(conn, 'c-gated')).toBe('first line\nsecond go\n');
    const seqs = conn.frames.items.filter((f) => f.t === 'output' && f.id === 'c-gated').map((f) => (f as { seq: number }).seq);
    expect(seqs).toEqual(seqs.map((_, i) => i));
  });

  it('cancel kills the whole process group, grandchildren included', async () => {
    const dir = makeTempDir();
    const pidFile = join(dir, 'grandchild.pid');
    const peer = await startPeer();
    startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-d', config: { allowArbitraryCommands: true } });
    const conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    conn.send({ t: 'call', id: 'c-long', op: 'exec', params: { command: `sleep 300 & echo $! > ${pidFile}; echo started; wait` } });
    await conn.waitFrame('output', (f) => f.id === 'c-long' && f.data.includes('started'));
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(isAlive(pid)).toBe(true);

    conn.send({ t: 'cancel', id: 'c-long', reason: 'test' });
    const error = await conn.waitFrame('error', (f) => f.id === 'c-long');
    expect(error.code).toBe('SEEDWIRE_CANCELED');
    await waitFor(() => !isAlive(pid), { what: `grandchild ${pid} to be gone`, timeoutMs: 5_000 });
  });

  it('answers a bad frame with an error frame and keeps serving calls', async () => {
    const peer = await startPeer();
    startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-e' });
    const conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    conn.send('this is not json');
    expect(await conn.waitFrame('error', (f) => f.id === null)).toMatchObject({ code: 'SEEDWIRE_BAD_FRAME' });
    conn.send(JSON.stringify({ t: 'call', id: 'c-broken', op: 7 }));
    expect(await conn.waitFrame('error', (f) => f.id === 'c-broken')).toMatchObject({ code: 'SEEDWIRE_BAD_FRAME' });
    conn.ws.send(Buffer.from('not a data frame'));
    await conn.frames.waitFor((f) => f.t === 'error' && f.id === null && f.message.includes('header'));
    conn.send({ t: 'call', id: 'c-after', op: 'hostname', params: {} });
    await conn.waitFrame('result', (f) => f.id === 'c-after');
    expect(peer.connections.items).toHaveLength(1);
  });

  it('reconnects to a controller restarted on the same port and delivers a result finished while disconnected', async () => {
    const dir = makeTempDir();
    const fifo = makeFifo(dir, 'gate');
    let peer = await startPeer();
    const port = peer.port;
    const agent = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-f', config: { allowArbitraryCommands: true } });
    let conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    conn.send({ t: 'call', id: 'c-offline', op: 'exec', params: { command: `echo before; read word < ${fifo}; echo "after $word"` } });
    await conn.waitFrame('output', (f) => f.id === 'c-offline');

    await closePeer(peer);
    await agent.waitForLog((l) => l.msg === 'disconnected');
    await writeFile(fifo, 'offline\n');
    await agent.waitForLog((l) => l.msg === 'call ended' && l.callId === 'c-offline');

    peer = await startPeer({ port });
    conn = await peer.connections.waitFor(() => true, { what: 'a reconnect' });
    const hello = await conn.waitFrame('hello');
    expect(hello.pending).toContain('c-offline');
    const result = await conn.waitFrame('result', (f) => f.id === 'c-offline');
    expect(result.exitCode).toBe(0);
    expect(outputText(conn, 'c-offline')).toBe('after offline\n');
    // output buffered while disconnected goes out before the result
    const outIdx = conn.frames.items.findIndex((f) => f.t === 'output' && f.id === 'c-offline');
    expect(outIdx).toBeLessThan(conn.frames.items.indexOf(result));

    // a duplicate call id is never run twice: the stored result comes back
    conn.send({ t: 'ack', ids: ['c-offline'] });
    conn.send({ t: 'call', id: 'c-offline', op: 'exec', params: { command: 'echo ran-again' } });
    await conn.waitFrame('result', (f) => f.id === 'c-offline' && f !== result);
    expect(outputText(conn, 'c-offline')).not.toContain('ran-again');
    expect(agent.logs.items.filter((l) => l.msg === 'call started' && l.callId === 'c-offline')).toHaveLength(1);
  });

  it('detects a controller that stopped answering and redials', async () => {
    const peer = await startPeer({ heartbeatMs: 200, deadAfterMs: 600 });
    const agent = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-g', config: { advanced: { heartbeatMs: 200, deadAfterMs: 600 } } });
    const first = await peer.connections.waitFor(() => true);
    await first.waitFrame('hello');
    await first.waitFrame('ping');
    // stop reading: the agent's pings pile up unanswered in the kernel, like a half-open link
    first.request.socket.pause();
    await agent.waitForLog((l) => l.msg.includes('deadAfterMs'), { timeoutMs: 5_000 });
    const second = await peer.connections.waitFor((c) => c !== first, { what: 'a redial', timeoutMs: 5_000 });
    await second.waitFrame('hello');
    second.send({ t: 'call', id: 'c-alive', op: 'hostname', params: {} });
    await second.waitFrame('result', (f) => f.id === 'c-alive');
  });

  it('a controller that pings its agents is answered, not pinged; once it falls silent the agent pings, then redials', async () => {
    // heartbeatMs 200: the agent's own ping would come every 200 ms; told the controller pings, it
    // waits for 300 ms of silence (one and a half periods) instead.
    const peer = await startPeer({ heartbeatMs: 200, deadAfterMs: 1_500, pingsAgents: true });
    startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-p' });
    const first = await peer.connections.waitFor(() => true);
    await first.waitFrame('hello');
    // The controller's sweep: a ping every 200 ms, twelve of them, each answered.
    for (let n = 1; n <= 12; n++) {
      await new Promise<void>((resolve) => setTimeout(resolve, 200));
      first.send({ t: 'ping', ts: n });
      await first.waitFrame('pong', (f) => f.ts === n);
    }
    expect(first.frames.items.filter((f) => f.t === 'ping')).toEqual([]);
    // Silence: the agent pings (answered by the peer's pong, which keeps the link), and pings
    // again at each silence; once nothing at all comes back, it redials.
    const silentFrom = Date.now();
    const ping = await first.waitFrame('ping', undefined, 5_000);
    expect(Date.now() - silentFrom).toBeGreaterThanOrEqual(250);
    expect(ping.ts).toBeGreaterThan(0);
    first.request.socket.pause();
    const second = await peer.connections.waitFor((c) => c !== first, { what: 'a redial', timeoutMs: 10_000 });
    await second.waitFrame('hello');
  });

  it.each([
    ['an agent of a controller that does not ping', 'agent-q', false, {}],
    ['an agent given its own advanced.heartbeatMs, even by a controller that pings', 'agent-r', true, { advanced: { heartbeatMs: 200 } }],
  ] as const)('%s: pings every period', async (_what, id, pingsAgents, config) => {
    const peer = await startPeer({ heartbeatMs: pingsAgents ? 20_000 : 200, deadAfterMs: 1_500, pingsAgents });
    startAgent({ controllerUrl: peer.url, token: TOKEN, id, config });
    const conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    await conn.frames.waitFor(() => conn.frames.items.filter((f) => f.t === 'ping').length >= 3, { timeoutMs: 5_000, what: 'three pings' });
  });

  it('drains on SIGTERM: no new calls, the running one finishes and is delivered, exit 0', async () => {
    const dir = makeTempDir();
    const fifo = makeFifo(dir, 'gate');
    const peer = await startPeer();
    const agent = startAgent({ controllerUrl: peer.url, token: TOKEN, id: 'agent-h', config: { allowArbitraryCommands: true } });
    const conn = await peer.connections.waitFor(() => true);
    await conn.waitFrame('hello');
    conn.send({ t: 'call', id: 'c-drain', op: 'exec', params: { command: `read word < ${fifo}; echo "got $word"` } });
    await agent.waitForLog((l) => l.msg === 'call started' && l.callId === 'c-drain');
    agent.child.kill('SIGTERM');
    await agent.waitForLog((l) => l.msg === 'draining');
    conn.send({ t: 'call', id: 'c-late', op: 'hostname', params: {} });
    expect(await conn.waitFrame('error', (f) => f.id === 'c-late')).toMatchObject({ code: 'SEEDWIRE_SHUTTING_DOWN' });
    await writeFile(fifo, 'drained\n');
    expect(await conn.waitFrame('result', (f) => f.id === 'c-drain')).toMatchObject({ exitCode: 0 });
    expect(outputText(conn, 'c-drain')).toBe('got drained\n');
    expect((await agent.exited).code).toBe(0);
  });

  it('exits non-zero with one line naming the key on bad config', async () => {
    const dir = makeTempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, ['controller: ws://127.0.0.1:1/agent', 'token: x', 'mysql:', '  datadir: /var/lib/mysql', '  port: "3306x"', '  startCommand: a', '  stopCommand: b', '  statusCommand: c', ''].join('\n'));
    const child = spawnAgentCli(['--config', file]);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    let stdout = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^seedwire-agent: config error at mysql\.port: .*number/);
  });
});
