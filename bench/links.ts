/**
 * `make bench`, links section (docs/performance.md, "Long links"): a seed over shaped and delayed
 * links against `tar | nc` through a dial-out relay on the same links.
 *
 * Topology (test/helpers/netns.ts `buildNatTopology`): two host namespaces behind a NAT router
 * whose links are shaped to 1 Gbit/s (tc tbf on the router's WAN and both LAN links, so both
 * directions of each host's path); the controller's side is the root namespace. With delay, a
 * userspace proxy there (bench/delay-proxy-process.ts, a process of its own) adds 20 ms each way
 * (40 ms RTT) and stalls everything for 150 ms every 3 s; both hosts reach the controller, or the
 * relay, only through it. Every path crosses it twice (source → controller, controller → target),
 * so a credit grant's round trip (target → controller → source → controller → target) takes 80 ms
 * of delay: the bandwidth-delay product the credit window must cover is 10 MB, twice the 5 MB of
 * one 40 ms leg.
 *
 * Each configuration (without delay, with delay) runs:
 *  - the relay: `socat` on the controller's side listens twice; the target host dials it with
 *    `nc | tar -x`, the source host with `tar -c | nc` (both dial out, as the agents do);
 *  - the seed: a real controller in the root namespace and the two agents in the host
 *    namespaces, a cold seed without compression; the receiver's credit window is read from its
 *    `seed-receive` progress (`window`) on the controller's event feed, with the sender's
 *    `seed-send` progress (`sent`) beside it for the bytes in flight.
 * Before them, the proxy's own ceiling: the dataset through it on loopback, without shaping, with
 * and without delay.
 *
 * Needs root, ip, nft, tc, socat and nc; without them the section is skipped with the reason.
 * Everything (namespaces with their qdiscs, processes, temp dirs) is removed after the section and
 * on failure or Ctrl-C (bench/procs.ts cleanup hooks). `node --import tsx bench/links.ts` runs
 * this section alone and prints its JSON.
 */
import { execFileSync } from 'node:child_process';
import { NODE_FLAGS } from '../shared/node-flags.js';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ApiClient, type SeedView } from '../client/api.js';
import { LIMITS } from '../shared/limits.js';
import { buildNatTopology, NetLab, type NatTopology, type Netns } from '../test/helpers/netns.js';
import { checkSeedCopy, compareTrees, ensureDataset, mariadbVersion, type Dataset } from './dataset.js';
import { makeRecipe } from './recipe.js';
import { cleanupAll, cleanupAllSync, cpuSeconds, makeTemp, registerCleanup, removeTemp, spawnTracked, stopTracked, type Tracked } from './procs.js';
import { AGENT_ENTRY, requireBuilt } from './harness.js';

const MB = 1e6;
const RATE = '1gbit';
const RATE_BYTES_PER_SEC = 125e6;
const ONE_WAY_DELAY_MS = 20;
const STALL_EVERY_MS = 3_000;
const STALL_MS = 150;
const TOOLS = ['ip', 'nft', 'tc', 'socat', 'nc', 'tar', 'ss'];

export interface WindowReport {
  initialBytes: number;
  maxBytes: number;
  /** Largest window the receivers reported together (the lanes running side by side summed), and when (ms after its first progress) and after how many bytes. */
  reachedBytes: number | null;
  reachedAtMs: number | null;
  reachedAfterBytes: number | null;
  /** When the window first covered the credit loop's bandwidth-delay product (null: never). */
  coveredLoopBdpAtMs: number | null;
  coveredLoopBdpAfterBytes: number | null;
  /** Sender's offset minus receiver's (same moment, ±one progress interval): bytes granted and not yet handled. */
  inFlightMedianBytes: number | null;
  inFlightMaxBytes: number | null;
  /** [ms since the receiver's first progress, received bytes, window bytes], at most 80 points. */
  samples: Array<[number, number, number]>;
}

export interface LinkRun {
  relayMBps: number | null;
  relaySeconds: number | null;
  seedMBps: number | null;
  seedTransferSeconds: number | null;
  ratio: number | null;
  /** CPU seconds each process spent during the seed (controller, agents, proxy). */
  seedCpuSeconds: Record<string, number | null>;
  relayCpuSeconds: Record<string, number | null>;
  proxyStalls: number | null;
  window: WindowReport | null;
  verified: string | null;
}

export interface LinksResult {
  skipped: string | null;
  link: { rate: string; oneWayDelayMs: number; rttMs: number; stallEveryMs: number; stallMs: number; bdpBytes: number; creditLoopBdpBytes: number };
  /**
   * The proxy alone on loopback (no shaping): MB/s and its CPU seconds, without and with the delay,
   * beside the same copy without the proxy (`directMBps`): what the machine allows at the moment.
   */
  proxyCeiling: { directMBps: number | null; noDelayMBps: number | null; noDelayCpuSeconds: number | null; delayMBps: number | null; delayCpuSeconds: number | null } | null;
  direct: LinkRun | null;
  delayed: LinkRun | null;
}

export interface LinksContext {
  dataset: Dataset;
  root: string;
  log: (line: string) => void;
  fail: (phase: string, error: unknown) => void;
  seedTimeoutMs: number;
}

const round = (n: number | null, digits = 1): number | null => (n === null || !Number.isFinite(n) ? null : Math.round(n * 10 ** digits) / 10 ** digits);
const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Why this section cannot run here, or null. */
export function linksUnavailable(): string | null {
  if (process.env['SEEDWIRE_BENCH_LINKS'] === '0') return 'SEEDWIRE_BENCH_LINKS=0';
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const tool of TOOLS) {
    try {
      execFileSync('bash', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool} || test -x /sbin/${tool}`], { stdio: 'ignore' });
    } catch {
      missing.push(tool);
    }
  }
  return missing.length > 0 ? `needs ${missing.join(', ')}` : null;
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('SEEDWIRE_')) delete env[key];
  return env;
}

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await Promise.resolve()
      .then(probe)
      .catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

function freePort(host: string): Promise<number> {
  return new Promise<number>((resolveFn, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolveFn(port));
    });
  });
}

const listening = (port: number): boolean => execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).includes('LISTEN');

async function exitedOk(t: Tracked, timeoutMs: number): Promise<void> {
  const timer = setTimeout(() => void stopTracked(t, 1_000), timeoutMs); // stopTracked only resolves
  const { code, signal } = await t.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${t.name}: exit ${code ?? signal}: ${t.tail.slice(-5).join(' | ')}`);
}

/** The numbers a run measures on every process it started, between two calls. */
function cpuMeter(procs: Record<string, Tracked | null>): () => Record<string, number | null> {
  const before = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, p ? cpuSeconds(p.pid) : null]));
  return () =>
    Object.fromEntries(
      Object.entries(procs).map(([k, p]) => {
        const after = p ? cpuSeconds(p.pid) : null;
        const b = before[k];
        return [k, after === null || b === null || b === undefined ? null : round(after - b, 2)];
      }),
    );
}

// ---- processes --------------------------------------------------------------------------------

interface Proxy {
  proc: Tracked;
  ports: number[];
}

/** What the proxy adds: nothing (its ceiling), the delay alone, or the delay with stalls (the links' runs). */
type ProxyMode = 'plain' | 'delay' | 'delay+stalls';

async function startProxy(ctx: LinksContext, name: string, forwards: Array<{ listen: string; host: string; port: number }>, mode: ProxyMode): Promise<Proxy> {
  const args = ['--import', 'tsx', join(ctx.root, 'bench/delay-proxy-process.ts'), '--delay-ms', String(mode === 'plain' ? 0 : ONE_WAY_DELAY_MS)];
  if (mode === 'delay+stalls') args.push('--stall-every-ms', String(STALL_EVERY_MS), '--stall-ms', String(STALL_MS));
  for (const f of forwards) args.push('--forward', `${f.listen}=${f.host}:${f.port}`);
  const proc = spawnTracked(name, process.execPath, args, { cwd: ctx.root, env: childEnv() });
  await proc.waitForRecord((r) => r['msg'] === 'ready', 30_000);
  const ports = forwards.map((_, i) => Number(proc.records.find((r) => r['msg'] === 'listening' && r['forward'] === i)?.['port']));
  return { proc, ports };
}

/** Stops the proxy; returns the stall count of its first forward. */
async function stopProxy(proxy: Proxy | null): Promise<number | null> {
  if (!proxy) return null;
  await stopTracked(proxy.proc, 5_000);
  const stats = proxy.proc.records.find((r) => r['msg'] === 'stats')?.['forwards'];
  const first = Array.isArray(stats) ? (stats[0] as { stalls?: unknown } | undefined) : undefined;
  return typeof first?.stalls === 'number' ? first.stalls : null;
}

interface Controller {
  proc: Tracked;
  port: number;
  client: ApiClient;
  agentToken: string;
}

async function startController(ctx: LinksContext, address: string): Promise<Controller> {
  const dataDir = makeTemp('seedwire-benchlinks-controller-');
  const agentToken = randomBytes(16).toString('hex');
  const adminToken = randomBytes(16).toString('hex');
  writeFileSync(join(dataDir, 'agent-token'), agentToken, { mode: 0o600 });
  writeFileSync(join(dataDir, 'admin-token'), adminToken, { mode: 0o600 });
  const args = [join(ctx.root, 'dist/server-stub/main.js'), '--listen', `${address}:0`, '--data-dir', dataDir];
  args.push('--agent-token-file', join(dataDir, 'agent-token'), '--admin-token-file', join(dataDir, 'admin-token'));
  const proc = spawnTracked('links-controller', process.execPath, [...NODE_FLAGS, ...args], { cwd: ctx.root, env: childEnv() });
  const record = await proc.waitForRecord((r) => r['msg'] === 'listening', 20_000);
  const url = String(record['url']);
  return { proc, port: Number(new URL(url).port), client: new ApiClient({ baseUrl: url, token: adminToken }), agentToken };
}

/** A mysql section whose "service" is a flag file outside the datadir (as bench/run.ts's). */
function fakeMysql(datadir: string, flag: string): Record<string, unknown> {
  return { datadir, statusCommand: `test -e ${shq(flag)}`, startCommand: `touch ${shq(flag)}`, stopCommand: `rm -f ${shq(flag)}`, commandTimeoutSeconds: 10 };
}

function startAgentIn(ctx: LinksContext, ns: Netns, id: string, controllerUrl: string, token: string, mysql: Record<string, unknown>): Tracked {
  const dir = makeTemp(`seedwire-benchlinks-${id}-`);
  const file = join(dir, 'agent.json');
  const config = { controller: controllerUrl, token, id, stateDir: join(dir, 'state'), mysql, advanced: { startupJitterMs: 0, reconnectBaseMs: 100, reconnectCapMs: 1_000 } };
  writeFileSync(file, JSON.stringify(config, null, 2));
  // `ip netns exec` execs in place: the tracked pid is the agent's own (its CPU time is the agent's).
  return spawnTracked(id, 'ip', ['netns', 'exec', ns.name, process.execPath, ...NODE_FLAGS, AGENT_ENTRY, '--config', file], { cwd: ctx.root, env: childEnv() });
}

// ---- the proxy's ceiling ----------------------------------------------------------------------

/** The dataset's tar through the proxy (or straight, `direct`) into `nc` on loopback, unshaped. */
async function proxyCeiling(ctx: LinksContext, mode: ProxyMode | 'direct'): Promise<{ mbps: number | null; cpu: number | null }> {
  const sinkPort = await freePort('127.0.0.1');
  const sink = spawnTracked('ceiling-sink', 'bash', ['-c', `nc -l -d 127.0.0.1 ${sinkPort} >/dev/null`], { env: childEnv() });
  let proxy: Proxy | null = null;
  try {
    proxy = mode === 'direct' ? null : await startProxy(ctx, 'ceiling-proxy', [{ listen: '127.0.0.1', host: '127.0.0.1', port: sinkPort }], mode);
    await waitUntil('the sink to listen', 10_000, () => listening(sinkPort));
    const meter = cpuMeter({ proxy: proxy?.proc ?? null });
    const t0 = performance.now();
    const sender = spawnTracked('ceiling-send', 'bash', ['-c', `tar -c -C ${shq(ctx.dataset.dir)} . | nc -N 127.0.0.1 ${proxy ? proxy.ports[0] : sinkPort}`], { env: childEnv() });
    await Promise.all([exitedOk(sender, 120_000), exitedOk(sink, 120_000)]);
    const seconds = (performance.now() - t0) / 1000;
    return { mbps: round(ctx.dataset.bytes / MB / seconds), cpu: meter()['proxy'] ?? null };
  } finally {
    await stopTracked(sink, 1_000);
    await stopProxy(proxy);
  }
}

// ---- the relay: tar | nc through socat on the controller's side -------------------------------

/** A pipeline that reports its CPU seconds (user + system, children included) as its last stderr line. */
const timed = (pipeline: string): string => `TIMEFORMAT='cpu %U %S'; time { ${pipeline}; }`;

function timedCpu(t: Tracked): number | null {
  const line = t.tail.findLast((l) => l.startsWith('cpu '));
  const [user, system] = (line ?? '').split(' ').slice(1).map(Number);
  return user === undefined || system === undefined || !Number.isFinite(user + system) ? null : round(user + system, 2);
}

async function relayRun(ctx: LinksContext, topo: NatTopology, delayed: boolean): Promise<{ seconds: number; cpu: Record<string, number | null>; stalls: number | null }> {
  const ctl = topo.controllerAddress;
  const dst = makeTemp('seedwire-benchlinks-relay-dst-');
  const recvPort = await freePort(ctl);
  let sendPort = await freePort(ctl);
  while (sendPort === recvPort) sendPort = await freePort(ctl);
  // -U: bytes go from the second address (the source's) to the first (the target's); the second
  // listens only once the first has its connection, so the target dials first.
  const relay = spawnTracked('relay-socat', 'socat', ['-U', `TCP-LISTEN:${recvPort},bind=${ctl},reuseaddr`, `TCP-LISTEN:${sendPort},bind=${ctl},reuseaddr`], { env: childEnv() });
  let proxy: Proxy | null = null;
  try {
    await waitUntil('socat to listen', 10_000, () => listening(recvPort));
    proxy = delayed
      ? await startProxy(ctx, 'relay-proxy', [
          { listen: ctl, host: ctl, port: recvPort },
          { listen: ctl, host: ctl, port: sendPort },
        ], 'delay+stalls')
      : null;
    const [dialRecv, dialSend] = proxy ? proxy.ports : [recvPort, sendPort];
    const receiver = spawnTracked('relay-recv', 'ip', ['netns', 'exec', topo.hosts[1]!.ns.name, 'bash', '-c', timed(`nc -d ${ctl} ${dialRecv} | tar -x -C ${shq(dst)}`)], { env: childEnv() });
    await waitUntil('the relay to take the target host and listen for the source', 10_000, () => listening(sendPort));
    const meter = cpuMeter({ proxy: proxy?.proc ?? null });
    const t0 = performance.now();
    const sender = spawnTracked('relay-send', 'ip', ['netns', 'exec', topo.hosts[0]!.ns.name, 'bash', '-c', timed(`tar -c -C ${shq(ctx.dataset.dir)} . | nc -N ${ctl} ${dialSend}`)], { env: childEnv() });
    await Promise.all([exitedOk(sender, ctx.seedTimeoutMs), exitedOk(receiver, ctx.seedTimeoutMs)]);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = { source: timedCpu(sender), target: timedCpu(receiver), ...meter() };
    const check = await compareTrees(ctx.dataset.dir, dst, new Set());
    if (check.problem) throw new Error(`the relayed copy differs: ${check.problem}`);
    return { seconds, cpu, stalls: await stopProxy(proxy) };
  } finally {
    await stopTracked(relay, 1_000);
    await stopProxy(proxy);
    removeTemp(dst);
  }
}

// ---- the seed ---------------------------------------------------------------------------------

interface ProgressSample {
  t: number;
  op: 'seed-receive' | 'seed-send';
  /** The operation: one seed-receive and one seed-send per lane (and per attempt). */
  id: string;
  /** null: the operation ended (its window no longer holds bytes in flight). */
  offset: number | null;
  window: number | null;
}

/** Follows the controller's event feed and keeps the seed transfer ops' progress, until aborted. */
function followProgress(client: ApiClient, signal: AbortSignal): { samples: ProgressSample[]; done: Promise<void> } {
  const samples: ProgressSample[] = [];
  const done = (async () => {
    try {
      for await (const event of client.events({ signal })) {
        if (event.type !== 'operation') continue;
        const data = event.data as { id?: unknown; op?: unknown; state?: unknown; progress?: Record<string, unknown> };
        if (typeof data.id !== 'string' || (data.op !== 'seed-receive' && data.op !== 'seed-send')) continue;
        if (data.state !== 'running') {
          samples.push({ t: performance.now(), op: data.op, id: data.id, offset: null, window: null });
          continue;
        }
        const progress = data.progress;
        if (!progress) continue;
        if (data.op === 'seed-receive' && typeof progress['received'] === 'number') {
          samples.push({ t: performance.now(), op: 'seed-receive', id: data.id, offset: progress['received'], window: typeof progress['window'] === 'number' ? progress['window'] : null });
        } else if (data.op === 'seed-send' && typeof progress['sent'] === 'number') {
          samples.push({ t: performance.now(), op: 'seed-send', id: data.id, offset: progress['sent'], window: null });
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  })();
  return { samples, done };
}

const median = (xs: number[]): number | null => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
const sum = (values: Iterable<number>): number => {
  let total = 0;
  for (const value of values) total += value;
  return total;
};

/**
 * The seed's lanes run side by side on the same links, so what matters against the product is
 * their sum: at each receiver report, the windows of the lanes still running added up, the bytes
 * received by all lanes, and the bytes sent by all lanes (each lane's latest report).
 */
export function analyseWindow(samples: ProgressSample[], loopBdpBytes: number): WindowReport {
  const received: Array<{ t: number; offset: number; window: number }> = [];
  const receivedBy = new Map<string, number>();
  const windowBy = new Map<string, number>();
  const sentBy = new Map<string, number>();
  const inFlight: number[] = [];
  for (const s of samples) {
    if (s.op === 'seed-send') {
      if (s.offset !== null) sentBy.set(s.id, Math.max(sentBy.get(s.id) ?? 0, s.offset));
      continue;
    }
    if (s.offset === null) {
      windowBy.delete(s.id);
      continue;
    }
    receivedBy.set(s.id, Math.max(receivedBy.get(s.id) ?? 0, s.offset));
    if (s.window !== null) windowBy.set(s.id, s.window);
    const total = sum(receivedBy.values());
    received.push({ t: s.t, offset: total, window: sum(windowBy.values()) });
    // In flight: the senders' latest offsets at this receiver sample, minus what the receivers handled.
    const sent = sum(sentBy.values());
    if (sent > 0) inFlight.push(Math.max(0, sent - total));
  }
  const t0 = received[0]?.t ?? 0;
  let reached: (typeof received)[number] | null = null;
  let covered: (typeof received)[number] | null = null;
  for (const s of received) {
    if (!reached || s.window > reached.window) reached = s;
    if (!covered && s.window >= loopBdpBytes) covered = s;
  }
  const step = Math.max(1, Math.ceil(received.length / 80));
  return {
    initialBytes: LIMITS.windowInitialBytes,
    maxBytes: LIMITS.windowMaxBytes,
    reachedBytes: reached?.window ?? null,
    reachedAtMs: reached ? Math.round(reached.t - t0) : null,
    reachedAfterBytes: reached?.offset ?? null,
    coveredLoopBdpAtMs: covered ? Math.round(covered.t - t0) : null,
    coveredLoopBdpAfterBytes: covered?.offset ?? null,
    inFlightMedianBytes: median(inFlight),
    inFlightMaxBytes: inFlight.length > 0 ? Math.max(...inFlight) : null,
    samples: received.filter((_, i) => i % step === 0).map((s) => [Math.round(s.t - t0), s.offset, s.window]),
  };
}

async function seedRun(
  ctx: LinksContext,
  topo: NatTopology,
  delayed: boolean,
): Promise<{ seconds: number; cpu: Record<string, number | null>; window: WindowReport; stalls: number | null; verified: string }> {
  const ctl = topo.controllerAddress;
  const controller = await startController(ctx, ctl);
  const work = makeTemp('seedwire-benchlinks-seed-');
  const targetDir = join(work, 'target-datadir');
  mkdirSync(targetDir);
  const sourceFlag = join(work, 'source-running');
  writeFileSync(sourceFlag, '');
  let proxy: Proxy | null = null;
  const agents: Tracked[] = [];
  const feed = new AbortController();
  try {
    proxy = delayed ? await startProxy(ctx, 'seed-proxy', [{ listen: ctl, host: ctl, port: controller.port }], 'delay+stalls') : null;
    const url = `ws://${ctl}:${proxy ? proxy.ports[0] : controller.port}/agent`;
    const source = startAgentIn(ctx, topo.hosts[0]!.ns, 'links-source', url, controller.agentToken, fakeMysql(ctx.dataset.dir, sourceFlag));
    const target = startAgentIn(ctx, topo.hosts[1]!.ns, 'links-target', url, controller.agentToken, fakeMysql(targetDir, join(work, 'target-running')));
    agents.push(source, target);
    for (const id of ['links-source', 'links-target']) {
      await waitUntil(`${id} to connect with its facts`, 30_000, async () => (await controller.client.agent(id)).facts?.datadir, 100);
    }
    const follower = followProgress(controller.client, feed.signal);
    const meter = cpuMeter({ controller: controller.proc, source, target, proxy: proxy?.proc ?? null });
    const created = await controller.client.createSeed({ source: 'links-source', target: 'links-target', method: 'cold', compression: 'none', startTarget: false });
    const deadline = Date.now() + ctx.seedTimeoutMs;
    let seed: SeedView;
    let lastLog = 0;
    for (;;) {
      seed = await controller.client.seed(created.id);
      if (['succeeded', 'failed', 'aborted'].includes(seed.state)) break;
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        ctx.log(`  ${seed.stage ?? '?'}: ${((seed.bytesDone ?? 0) / MB).toFixed(0)} / ${((seed.bytesTotal ?? 0) / MB).toFixed(0)} MB`);
      }
      if (Date.now() > deadline) {
        await controller.client.abortSeed(created.id).catch(() => undefined);
        throw new Error(`seed ${created.id} not finished after ${ctx.seedTimeoutMs / 1000} s (stage ${seed.stage})`);
      }
      await delay(200);
    }
    const cpu = meter();
    feed.abort();
    await follower.done;
    if (seed.state !== 'succeeded') throw new Error(`seed ${seed.id} ${seed.state}: ${seed.error?.code}: ${seed.error?.message}`);
    const transfer = seed.stages.find((s) => s.name === 'transfer');
    if (!transfer?.startedAt || !transfer.endedAt) throw new Error(`seed ${seed.id}: no timed transfer stage`);
    const seconds = (Date.parse(transfer.endedAt) - Date.parse(transfer.startedAt)) / 1000;
    const check = await checkSeedCopy(ctx.dataset.dir, targetDir);
    if (!check.ok) throw new Error(`target differs from source: ${check.text}`);
    const window = analyseWindow(follower.samples, 2 * RATE_BYTES_PER_SEC * (2 * ONE_WAY_DELAY_MS / 1000));
    return { seconds, cpu, window, stalls: await stopProxy(proxy), verified: check.text };
  } finally {
    feed.abort();
    await Promise.allSettled(agents.map((a) => stopTracked(a)));
    await stopTracked(controller.proc);
    await stopProxy(proxy);
    removeTemp(work);
  }
}

// ---- the section ------------------------------------------------------------------------------

async function runConfig(ctx: LinksContext, topo: NatTopology, delayed: boolean): Promise<LinkRun> {
  const name = delayed ? 'delay' : 'no delay';
  const run: LinkRun = { relayMBps: null, relaySeconds: null, seedMBps: null, seedTransferSeconds: null, ratio: null, seedCpuSeconds: {}, relayCpuSeconds: {}, proxyStalls: null, window: null, verified: null };
  try {
    ctx.log(`links (${name}): tar | nc through a socat relay`);
    const relay = await relayRun(ctx, topo, delayed);
    run.relaySeconds = round(relay.seconds, 2);
    run.relayMBps = round(ctx.dataset.bytes / MB / relay.seconds);
    run.relayCpuSeconds = relay.cpu;
    ctx.log(`links (${name}): relay ${run.relayMBps} MB/s`);
  } catch (error) {
    ctx.fail(`links relay (${name})`, error);
  }
  try {
    ctx.log(`links (${name}): seed through the controller`);
    const seed = await seedRun(ctx, topo, delayed);
    run.seedTransferSeconds = round(seed.seconds, 2);
    run.seedMBps = round(ctx.dataset.bytes / MB / seed.seconds);
    run.seedCpuSeconds = seed.cpu;
    run.window = seed.window;
    run.proxyStalls = seed.stalls;
    run.verified = seed.verified;
    ctx.log(`links (${name}): seed ${run.seedMBps} MB/s, window reached ${seed.window.reachedBytes} bytes`);
  } catch (error) {
    ctx.fail(`links seed (${name})`, error);
  }
  if (run.seedMBps !== null && run.relayMBps !== null) run.ratio = round(run.seedMBps / run.relayMBps, 2);
  return run;
}

function sweepLabSync(lab: NetLab): void {
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.includes(`-${lab.tag}-`));
  for (const name of names) {
    const pids = execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  }
}

export function emptyLinksResult(skipped: string | null): LinksResult {
  return {
    skipped,
    link: {
      rate: RATE,
      oneWayDelayMs: ONE_WAY_DELAY_MS,
      rttMs: 2 * ONE_WAY_DELAY_MS,
      stallEveryMs: STALL_EVERY_MS,
      stallMs: STALL_MS,
      bdpBytes: RATE_BYTES_PER_SEC * ((2 * ONE_WAY_DELAY_MS) / 1000),
      creditLoopBdpBytes: 2 * RATE_BYTES_PER_SEC * ((2 * ONE_WAY_DELAY_MS) / 1000),
    },
    proxyCeiling: null,
    direct: null,
    delayed: null,
  };
}

export async function runLinksPhase(ctx: LinksContext): Promise<LinksResult> {
  const skipped = linksUnavailable();
  const result = emptyLinksResult(skipped);
  if (skipped) {
    ctx.log(`links section skipped: ${skipped}`);
    return result;
  }
  try {
    ctx.log('links: the delaying proxy alone on loopback (its ceiling)');
    const direct = await proxyCeiling(ctx, 'direct');
    const a = await proxyCeiling(ctx, 'plain');
    const b = await proxyCeiling(ctx, 'delay');
    result.proxyCeiling = { directMBps: direct.mbps, noDelayMBps: a.mbps, noDelayCpuSeconds: a.cpu, delayMBps: b.mbps, delayCpuSeconds: b.cpu };
  } catch (error) {
    ctx.fail('links proxy ceiling', error);
  }
  const lab = await NetLab.create();
  const unregister = registerCleanup({ run: () => lab.teardown(), runSync: () => sweepLabSync(lab) });
  try {
    const topo = await buildNatTopology(lab, { hosts: 2 });
    for (const dev of ['wan', 'lan1', 'lan2']) await topo.router.tbf(dev, RATE);
    result.direct = await runConfig(ctx, topo, false);
    result.delayed = await runConfig(ctx, topo, true);
  } finally {
    await lab.teardown();
    unregister();
  }
  return result;
}

export function linksTable(r: LinksResult): Array<[string, string]> {
  const f = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'n/a' : `${v}${unit}`);
  const mb = (v: number | null | undefined): string => (v === null || v === undefined ? 'n/a' : `${(v / MB).toFixed(1)} MB`);
  const rows: Array<[string, string]> = [];
  rows.push([`— links: ${r.link.rate} (tbf), ${r.link.rttMs} ms RTT + ${r.link.stallMs} ms stall every ${r.link.stallEveryMs / 1000} s (userspace proxy)`, '']);
  if (r.skipped) {
    rows.push(['skipped', r.skipped]);
    return rows;
  }
  const c = r.proxyCeiling;
  rows.push([
    'proxy alone, loopback: no delay / delay',
    c ? `${f(c.noDelayMBps, ' MB/s')} (${f(c.noDelayCpuSeconds, ' CPU s')}) / ${f(c.delayMBps, ' MB/s')} (${f(c.delayCpuSeconds, ' CPU s')}); without it ${f(c.directMBps, ' MB/s')}` : 'n/a',
  ]);
  for (const [name, run] of [['no delay', r.direct], ['40 ms RTT + stalls', r.delayed]] as const) {
    if (!run) continue;
    const relayCpu = Object.entries(run.relayCpuSeconds).map(([k, v]) => `${k} ${v ?? 'n/a'}`).join(', ');
    rows.push([`tar | nc via socat relay, ${name}`, `${f(run.relayMBps, ' MB/s')}  (CPU s: ${relayCpu || 'n/a'})`]);
    rows.push([`seed (none), ${name}`, `${f(run.seedMBps, ' MB/s')}  = ${f(run.ratio)}× the relay`]);
    const cpu = Object.entries(run.seedCpuSeconds).map(([k, v]) => `${k} ${v ?? 'n/a'}`).join(', ');
    rows.push(['  CPU s during the seed', cpu || 'n/a']);
    const w = run.window;
    if (w) {
      rows.push([
        '  credit window',
        `reached ${mb(w.reachedBytes)} after ${mb(w.reachedAfterBytes)} (${f(w.reachedAtMs, ' ms')}); covers the ${mb(r.link.creditLoopBdpBytes)} loop BDP after ${mb(w.coveredLoopBdpAfterBytes)}; in flight median ${mb(w.inFlightMedianBytes)}, max ${mb(w.inFlightMaxBytes)}`,
      ]);
    }
  }
  return rows;
}

// Run alone: `node --import tsx bench/links.ts` (dataset size from SEEDWIRE_BENCH_BYTES, default 1 GiB).
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
  const log = (line: string): void => void process.stderr.write(`[links ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const errors: string[] = [];
  const fail = (phase: string, error: unknown): void => {
    const message = error instanceof Error ? error.message : String(error);
    errors.push(`${phase}: ${message}`);
    log(`${phase} FAILED: ${message}`);
  };
  const sizeText = process.env['SEEDWIRE_BENCH_BYTES'];
  const bytes = sizeText ? Number(sizeText) : 2 ** 30;
  if (!Number.isInteger(bytes) || bytes <= 0) throw new Error(`SEEDWIRE_BENCH_BYTES: expected a byte count when running bench/links.ts alone, got '${sizeText}'`);
  requireBuilt();
  process.on('exit', cleanupAllSync);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      // cleanupAll settles every step; the catch only guards the log line
      void cleanupAll()
        .catch(() => undefined)
        .finally(() => process.exit(130));
    });
  }
  ensureDataset(join(root, 'bench/.data'), makeRecipe(bytes, mariadbVersion()), log)
    .then((dataset) => runLinksPhase({ dataset, root, log, fail, seedTimeoutMs: 300_000 }))
    .then(async (result) => {
      process.stdout.write(`${JSON.stringify({ links: result, errors }, null, 2)}\n`);
      const rows = linksTable(result);
      const width = Math.max(...rows.map(([k]) => k.length));
      process.stderr.write(`${rows.map(([k, v]) => (v === '' ? k : `${k.padEnd(width)}  ${v}`)).join('\n')}\n`);
      await cleanupAll();
      process.exit(errors.length > 0 ? 1 : 0);
    })
    .catch(async (error: unknown) => {
      fail('links', error);
      await cleanupAll();
      process.exit(1);
    });
}
