/**
 * seedwire behind NAT, firewalls and an outbound proxy, with real network namespaces:
 *
 *   root namespace: the controller on 10.X.0.1 (a veth the test made) ── wan ── router (masquerade,
 *   strict conntrack) ── lan1 ── host1 (agent nat-a, MariaDB source)
 *                      ── lan2 ── host2 (agent nat-b, MariaDB target)
 *                      ── lan3 ── host3 (agent nat-proxied: no route out; only tinyproxy on the router)
 *
 * Every host's firewall drops every inbound connection. The agents dial out, run operations with
 * live output and seed one host from the other; a listener inside a host stays unreachable; the
 * proxied host reaches the controller only through the proxy; heartbeats keep NAT mappings alive
 * past a shortened conntrack timeout, and a flushed mapping is noticed within deadAfterMs, redialed,
 * and an operation in flight still delivers its result.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiClient } from '../../client/api.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';
import { startAgent, stopAllAgents, type AgentProcess } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { createMariaDB, type MariaDB } from '../helpers/mariadb.js';
import { buildNatTopology, hostFirewall, missingNetworkTools, NetLab, type NatTopology } from '../helpers/netns.js';
import { mysqlSectionOf, seedApi, type SeedJson } from '../helpers/seed-api.js';
import { startTinyproxy, stopAllTinyproxies, type Tinyproxy } from '../helpers/tinyproxy.js';

const skip = missingNetworkTools(['tinyproxy', 'mariadbd', 'mariadb-install-db']);
const TOKEN = 'nat-test-agent-token';
const HEARTBEAT_MS = 2_000;
const DEAD_AFTER_MS = 8_000;
/** The shortened NAT mapping timeout for established TCP flows in the router (seconds). */
const NAT_TIMEOUT_S = 20;
const PROXY_PORT = 3128;
const PROXY_PASSWORD = 'nat-proxy-pw-4e1';

/** Resolves true if a TCP connection to host:port opens within timeoutMs, false if it times out or is refused. */
function tcpConnects(host: string, port: number, timeoutMs: number): Promise<{ connected: boolean; why: string }> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host, port });
    const done = (connected: boolean, why: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ connected, why });
    };
    const timer = setTimeout(() => done(false, 'timeout'), timeoutMs);
    socket.once('connect', () => done(true, 'connected'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(false, error.code ?? error.message));
  });
}

describe.skipIf(skip)('agents behind NAT, firewalls and a proxy', () => {
  let lab: NetLab;
  let topo: NatTopology;
  let base: string;
  let controller: RunningController;
  let client: ApiClient;
  let source: MariaDB;
  let target: MariaDB;
  let agentA: AgentProcess;
  let agentB: AgentProcess;
  let proxy: Tinyproxy;
  let proxied: AgentProcess;
  const { op, agentsReady, seedUntilDone } = seedApi(() => controller);

  const timing = { heartbeatMs: HEARTBEAT_MS, deadAfterMs: DEAD_AFTER_MS };
  const sessions = (agent: AgentProcess): number => agent.logs.items.filter((l) => l.msg === 'connected').length;

  /** Starts an exec that prints `first`, waits for `gate` to exist, prints `second`; returns the operation id. */
  async function gatedExec(agentId: string, gate: string): Promise<string> {
    const started = await client.runOp(agentId, 'exec', { command: `echo first; while [ ! -e ${gate} ]; do sleep 0.05; done; echo second` }, { wait: 0 });
    return started.id;
  }

  async function waitForOperationEnd(id: string, timeout = 60_000): Promise<Awaited<ReturnType<ApiClient['operation']>>> {
    let operation!: Awaited<ReturnType<ApiClient['operation']>>;
    await vi.waitFor(
      async () => {
        operation = await client.operation(id);
        expect(operation.state).not.toBe('running');
      },
      { timeout, interval: 100 },
    );
    return operation;
  }

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sw-nat-'));
    lab = await NetLab.create();
    topo = await buildNatTopology(lab, { hosts: 3 });
    const [host1, host2, host3] = topo.hosts;

    // host3: no route out at all, and a firewall that lets it reach only the proxy on its gateway.
    await host3!.ns.exec('ip', ['route', 'del', 'default']);
    await host3!.ns.exec('nft', ['flush', 'ruleset']);
    await host3!.ns.nft(hostFirewall({ onlyTo: [{ address: host3!.gateway, port: PROXY_PORT }] }));

    controller = await startController({ agentToken: TOKEN, listen: `${topo.controllerAddress}:0`, extraArgs: ['--heartbeat-ms', String(HEARTBEAT_MS), '--dead-after-ms', String(DEAD_AFTER_MS)] });
    client = new ApiClient({ baseUrl: controller.url, token: controller.adminToken });

    source = await createMariaDB({ baseDir: join(base, 'src'), serverId: 1 });
    target = await createMariaDB({ baseDir: join(base, 'tgt'), serverId: 2 });
    // The source server runs inside its host's namespace, as it would on that host.
    await host1!.ns.exec('bash', ['-c', source.startCommand]);
    await source.loadSampleData(20_000);

    const common = { datacenter: 'dc-nat', allowArbitraryCommands: true };
    agentA = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'nat-a', prefix: host1!.ns.prefix, config: { ...common, mysql: mysqlSectionOf(source), advanced: timing } });
    agentB = startAgent({ controllerUrl: controller.wsUrl, token: TOKEN, id: 'nat-b', prefix: host2!.ns.prefix, config: { ...common, mysql: mysqlSectionOf(target), advanced: timing } });

    proxy = await startTinyproxy({ listen: host3!.gateway, port: PROXY_PORT, allow: [`${host3!.address}`], basicAuth: { user: 'db-host', password: PROXY_PASSWORD }, prefix: topo.router.prefix });
    const credentials = join(base, 'proxy-credentials');
    writeFileSync(credentials, `db-host:${PROXY_PASSWORD}\n`, { mode: 0o600 });
    proxied = startAgent({
      controllerUrl: controller.wsUrl,
      token: TOKEN,
      id: 'nat-proxied',
      prefix: host3!.ns.prefix,
      config: { ...common, proxy: { url: proxy.url, credentialsFile: credentials }, advanced: timing },
    });
    await agentsReady(['nat-a', 'nat-b', 'nat-proxied']);
  }, 300_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllTinyproxies();
    await stopAllControllers();
    controller?.cleanup();
    await source?.destroy();
    await target?.destroy();
    await lab?.teardown();
    if (base) rmSync(base, { recursive: true, force: true });
  }, 120_000);

  it('agents behind the NAT connect out; the controller sees only the router', async () => {
    const audit = await client.audit({ limit: 200 });
    const enrolled = audit.filter((a) => a.action === 'agent:enroll');
    expect(enrolled.map((a) => a.agentId).sort()).toEqual(['nat-a', 'nat-b', 'nat-proxied']);
    // every agent arrives from the router's WAN address: the hosts' own addresses never reach the controller
    for (const entry of enrolled) expect((entry.params as { remote: string }).remote).toMatch(new RegExp(`${topo.routerWan.replace(/\./g, '\\.')}$`));
  });

  it('an operation streams its output live through the NAT', async () => {
    const gate = join(base, 'gate-live');
    const id = await gatedExec('nat-a', gate);
    const stream = client.output(id);
    let seen = '';
    for await (const chunk of stream) {
      seen += chunk;
      if (seen.includes('first')) break;
    }
    // the first line arrived while the command still waits for the gate: live, not at the end
    expect((await client.operation(id)).state).toBe('running');
    writeFileSync(gate, '');
    const ended = await waitForOperationEnd(id);
    expect(ended.state).toBe('succeeded');
    expect(ended.exitCode).toBe(0);
    expect(ended.outputTail).toBe('first\nsecond\n');
  });

  it('nothing can connect into a host, while everything works', async () => {
    const [host1] = topo.hosts;
    const listener = host1!.ns.spawn('socat', ['TCP-LISTEN:7777,reuseaddr,fork', 'SYSTEM:echo reached']);
    // the listener is there: inside its host it answers
    await vi.waitFor(async () => expect(await host1!.ns.exec('socat', ['-T2', '-', 'TCP:127.0.0.1:7777'])).toBe('reached'), { timeout: 10_000 });

    // from the controller's side (with a route to the private network): the router drops it
    const routerDropsBefore = await topo.router.counter('seedwire_router', 'wan_inbound_dropped');
    const fromController = await tcpConnects(host1!.address, 7777, 3_000);
    expect(fromController).toEqual({ connected: false, why: 'timeout' });
    expect(await topo.router.counter('seedwire_router', 'wan_inbound_dropped')).toBeGreaterThan(routerDropsBefore);

    // from the router itself, on the host's own network: the host's firewall drops it
    const hostDropsBefore = await host1!.ns.counter('seedwire_host', 'inbound_dropped');
    const fromRouter = await topo.router.try('socat', ['-T3', '-', `TCP:${host1!.address}:7777,connect-timeout=3`]);
    expect(fromRouter.exitCode).not.toBe(0);
    expect(fromRouter.stdout).not.toContain('reached');
    expect(await host1!.ns.counter('seedwire_host', 'inbound_dropped')).toBeGreaterThan(hostDropsBefore);

    // ... and the controller still drives the host through the agent's own connection
    const ran = await client.runOp('nat-a', 'exec', { command: 'ip -4 -o addr show dev eth0' }, { wait: 60 });
    expect(ran.state).toBe('succeeded');
    expect(ran.outputTail).toContain(`${host1!.address}/24`);
    listener.kill('SIGKILL');
  });

  it('a cold seed from one NATed host to the other completes and verifies', async () => {
    const expected = await source.checksumTables();
    expect(expected.size).toBe(3);
    const created = await client.createSeed({ source: 'nat-a', target: 'nat-b', method: 'cold' });
    const seed: SeedJson = await seedUntilDone(created.id);
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(seed.stages.every((s) => s.state === 'succeeded')).toBe(true);
    expect(seed.stages.map((s) => s.name)).toContain('verify');
    expect(seed.bytesDone).toBe(seed.result?.bytes);
    // the target agent started its server inside host2's namespace; its tables match the source's
    expect((await op<{ running: boolean }>('nat-b', 'mysql-status')).result.running).toBe(true);
    expect(await target.checksumTables()).toEqual(expected);
    expect(existsSync(join(target.datadir, INCOMPLETE_MARKER))).toBe(false);
    expect((await op<{ running: boolean }>('nat-a', 'mysql-status')).result.running).toBe(true);
  }, 300_000);

  it('a host whose only way out is the proxy reaches the controller through it, never directly', async () => {
    const host3 = topo.hosts[2]!;
    const port = new URL(controller.url).port;
    await proxy.waitForLog(new RegExp(`CONNECT ${topo.controllerAddress.replace(/\./g, '\\.')}:${port} `));
    const ran = await op<unknown>('nat-proxied', 'exec', { command: 'echo through-the-proxy' });
    expect(ran.state).toBe('succeeded');
    // a direct connection from the host is impossible: no route, and its firewall would drop it
    const direct = await host3.ns.try('socat', ['-T2', '-', `TCP:${topo.controllerAddress}:${port},connect-timeout=2`]);
    expect(direct.exitCode).not.toBe(0);
    expect(direct.stderr).toMatch(/unreachable|timed out/i);
    await host3.ns.exec('ip', ['route', 'add', 'default', 'via', host3.gateway]);
    try {
      const dropsBefore = await host3.ns.counter('seedwire_host', 'outbound_dropped');
      const routed = await host3.ns.try('socat', ['-T2', '-', `TCP:${topo.controllerAddress}:${port},connect-timeout=2`]);
      expect(routed.exitCode).not.toBe(0);
      expect(await host3.ns.counter('seedwire_host', 'outbound_dropped')).toBeGreaterThan(dropsBefore);
    } finally {
      await host3.ns.exec('ip', ['route', 'del', 'default']);
    }
    const log = JSON.stringify(proxied.logs.items);
    expect(log).not.toContain(PROXY_PASSWORD);
    expect(log).toContain(`"proxy":"${proxy.url}"`);
  });

  describe('NAT mapping timeouts', () => {
    let savedTimeout: string;
    let idleServer: Server | undefined;

    beforeAll(async () => {
      savedTimeout = (await topo.router.exec('sysctl', ['-n', 'net.netfilter.nf_conntrack_tcp_timeout_established'])).trim();
      await topo.router.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', NAT_TIMEOUT_S);
    });
    afterAll(async () => {
      idleServer?.close();
      await topo.router.sysctl('net.netfilter.nf_conntrack_tcp_timeout_established', savedTimeout);
    });

    it(`heartbeats keep the mappings alive past a ${NAT_TIMEOUT_S} s conntrack timeout, where an idle flow's mapping expires`, async () => {
      const [host1] = topo.hosts;
      const before = { a: sessions(agentA), b: sessions(agentB), connectedAt: (await client.agent('nat-a')).connectedAt };
      const logFrom = { a: agentA.logs.items.length, b: agentB.logs.items.length, controller: controller.logs.length };
      // A control flow through the same router that stays silent: its mapping must expire.
      const server = createServer((socket) => socket.on('error', () => undefined));
      idleServer = server;
      await new Promise<void>((resolve) => server.listen(0, topo.controllerAddress, resolve));
      const idlePort = (server.address() as { port: number }).port;
      const accepted = new Promise<void>((resolve) => server.once('connection', () => resolve()));
      host1!.ns.spawn('socat', ['-', `TCP:${topo.controllerAddress}:${idlePort}`], { stdio: ['pipe', 'pipe', 'pipe'] });
      await accepted;
      const idleFlow = (line: string): boolean => line.includes(`dport=${idlePort} `) && line.includes('ESTABLISHED');
      const controllerPort = new URL(controller.url).port;
      const agentFlows = (lines: string[]): string[] => lines.filter((l) => l.includes(`dport=${controllerPort} `) && l.includes('ESTABLISHED'));
      await vi.waitFor(async () => expect((await topo.router.conntrack()).some(idleFlow)).toBe(true), { timeout: 5_000 });

      // The deadline is a little past the timeout; the idle mapping's disappearance is the event.
      await vi.waitFor(async () => expect((await topo.router.conntrack()).some(idleFlow)).toBe(false), { timeout: (NAT_TIMEOUT_S + 20) * 1000, interval: 500 });

      // Meanwhile the agents' mappings were refreshed by heartbeats (timeouts now within the short value) and never broke.
      const flows = agentFlows(await topo.router.conntrack());
      expect(flows.length).toBeGreaterThanOrEqual(2);
      for (const flow of flows) expect(Number(flow.split(/\s+/)[2])).toBeLessThanOrEqual(NAT_TIMEOUT_S);
      // A link that broke says why in the failure: what both agents and the controller logged meanwhile, warnings and link events.
      const notable = (line: { level?: number; msg?: string }): boolean => (line.level ?? 0) >= 40 || /connect|closed|silent|terminat/i.test(line.msg ?? '');
      const meanwhile = JSON.stringify({
        a: agentA.logs.items.slice(logFrom.a).filter(notable),
        b: agentB.logs.items.slice(logFrom.b).filter(notable),
        controller: controller.logs.slice(logFrom.controller).filter(notable),
      });
      expect({ a: sessions(agentA), b: sessions(agentB), connectedAt: (await client.agent('nat-a')).connectedAt }, `the agents' links broke during the wait; logged meanwhile: ${meanwhile}`).toEqual(before);
      expect((await op<unknown>('nat-a', 'exec', { command: 'true' })).state).toBe('succeeded');
    }, 120_000);

    it('a flushed mapping: the agent notices within deadAfterMs, redials, and the operation in flight delivers its result', async () => {
      const gate = join(base, 'gate-flush');
      const id = await gatedExec('nat-a', gate);
      await vi.waitFor(async () => expect(await client.outputText(id)).toContain('first'), { timeout: 30_000 });
      const before = sessions(agentA);
      const logIndex = agentA.logs.items.length;

      const flushedAt = Date.now();
      await topo.router.exec('conntrack', ['-F']);
      // The router now drops the agent's packets of the untracked flow: only the heartbeat watchdog can tell.
      await agentA.logs.waitFor((l) => l.msg === 'controller silent past deadAfterMs; terminating', { fromIndex: logIndex, timeoutMs: DEAD_AFTER_MS * 3, what: 'the dead-link watchdog' });
      const noticedMs = Date.now() - flushedAt;
      expect(noticedMs).toBeLessThan(DEAD_AFTER_MS + 2 * HEARTBEAT_MS + 5_000);
      await agentA.logs.waitFor((l) => l.msg === 'connected', { fromIndex: logIndex, timeoutMs: 60_000, what: 'a new session' });
      expect(sessions(agentA)).toBe(before + 1);

      // the command kept running across the drop; its result arrives through the new session
      writeFileSync(gate, '');
      const ended = await waitForOperationEnd(id);
      expect(ended.state).toBe('succeeded');
      expect(ended.exitCode).toBe(0);
      expect(ended.outputTail).toContain('second');
      expect(readFileSync(gate, 'utf8')).toBe('');
    }, 120_000);
  });
});
