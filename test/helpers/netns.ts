/**
 * Real network namespaces for the NAT, firewall and proxy tests: namespaces, veth pairs and
 * addresses (only inside namespaces a lab made, plus the root end of a veth pair it made), a
 * router that masquerades private networks (nftables), host firewalls that admit no inbound
 * connection, and processes run inside a namespace (`ip netns exec NAME cmd`, which execs in place,
 * so the child's pid is the command's).
 *
 * Every name carries this process's pid, so parallel runs never collide and a later run removes
 * what a killed one left. `teardown()` (register it with afterAll) kills what runs in the lab's
 * namespaces and deletes them; veths, addresses, routes, nft tables and conntrack state go with them.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { execa } from 'execa';
import { isAlive } from './checks.js';
import { missingTools } from './requirements.js';

/** What these helpers need; a missing one fails in CI (test/helpers/requirements.ts). */
export function missingNetworkTools(extra: string[] = []): string | null {
  return missingTools(['ip', 'nft', 'conntrack', 'tc', 'socat', ...extra], { root: true });
}

const NS_PREFIX = 'swnat-';

async function run(cmd: string, args: string[], input?: string): Promise<string> {
  const result = await execa(cmd, args, { reject: false, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
  if (result.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${result.exitCode}: ${result.stderr || result.stdout}`);
  return result.stdout;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Kills every process inside a namespace (all of them were started by the test that made it). */
async function killNamespacePids(name: string): Promise<void> {
  for (let round = 0; round < 50; round += 1) {
    const pids = (await execa('ip', ['netns', 'pids', name], { reject: false })).stdout.split('\n').filter(Boolean).map(Number);
    const alive = pids.filter((pid) => isAlive(pid));
    if (alive.length === 0) return;
    for (const pid of alive) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Removes namespaces left by runs whose process is gone (a killed test runner never tore down). */
async function sweepStale(): Promise<void> {
  const names = (await execa('ip', ['netns', 'list'], { reject: false })).stdout.split('\n').map((l) => l.split(' ')[0] ?? '');
  for (const name of names) {
    const m = new RegExp(`^${NS_PREFIX}([0-9a-z]+)-`).exec(name);
    if (!m) continue;
    const owner = parseInt(m[1]!, 36);
    if (owner === process.pid || isAlive(owner)) continue;
    await killNamespacePids(name);
    await execa('ip', ['netns', 'del', name], { reject: false });
  }
}

export class Netns {
  constructor(
    readonly name: string,
    private readonly lab: NetLab,
  ) {}

  /** `ip netns exec NAME`: prefix a command with it to run it in here. */
  get prefix(): string[] {
    return ['ip', 'netns', 'exec', this.name];
  }

  /** Runs a command in here to completion; throws with its stderr on a non-zero exit. */
  exec(cmd: string, args: string[] = [], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }

  /** Runs a command in here; resolves with its exit code and output whatever it is. */
  async try(cmd: string, args: string[] = []): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const result = await execa('ip', ['netns', 'exec', this.name, cmd, ...args], { reject: false, stdin: 'ignore' });
    return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
  }

  /** Starts a long-running process in here; the lab kills it at teardown. */
  spawn(cmd: string, args: string[] = [], options: SpawnOptions = {}): ChildProcess {
    return this.lab.track(spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options }));
  }

  /** Loads an nftables ruleset (nft -f syntax) into this namespace. */
  async nft(ruleset: string): Promise<void> {
    await this.exec('nft', ['-f', '-'], ruleset);
  }

  async sysctl(key: string, value: string | number): Promise<void> {
    await this.exec('sysctl', ['-q', '-w', `${key}=${value}`]);
  }

  /**
   * A token bucket on `dev`'s egress (tc tbf): at most `rate` (tc syntax, e.g. 1gbit), a burst a
   * little above one 64 KiB segment offload, and a queue that holds at most `latencyMs` of data.
   */
  async tbf(dev: string, rate: string, options: { burst?: string; latencyMs?: number } = {}): Promise<void> {
    await this.exec('tc', ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', options.burst ?? '256kb', 'latency', `${options.latencyMs ?? 50}ms`]);
  }

  /** The packet count of a named nft counter in this namespace. */
  async counter(table: string, name: string): Promise<number> {
    const out = await this.exec('nft', ['list', 'counter', 'inet', table, name]);
    return Number(/packets (\d+)/.exec(out)?.[1] ?? NaN);
  }

  /** Conntrack entries of TCP flows in this namespace (`conntrack -L` lines). */
  async conntrack(): Promise<string[]> {
    const out = await this.try('conntrack', ['-L', '-p', 'tcp']);
    return out.stdout.split('\n').filter((l) => l.startsWith('tcp'));
  }
}

/** One test's namespaces and links. */
export class NetLab {
  /** Base-36 pid plus a per-process counter: unique among concurrent runs, and parseable by sweepStale. */
  readonly tag: string;
  private readonly namespaces: Netns[] = [];
  private readonly rootLinks: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private links = 0;
  private tornDown: Promise<void> | undefined;
  private static count = 0;

  private constructor() {
    NetLab.count += 1;
    this.tag = `${process.pid.toString(36)}-${NetLab.count}`;
  }

  static async create(): Promise<NetLab> {
    await sweepStale();
    return new NetLab();
  }

  track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** A new namespace with its loopback up. */
  async namespace(short: string): Promise<Netns> {
    const name = `${NS_PREFIX}${this.tag}-${short}`;
    await run('ip', ['netns', 'add', name]);
    const ns = new Netns(name, this);
    this.namespaces.push(ns);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * A veth pair between `a` (a namespace, or 'root') and `b`, each end addressed (CIDR) and up.
   * Returns the interface names: `a`'s end, then `b`'s.
   */
  async veth(a: Netns | 'root', aAddress: string, b: Netns, bAddress: string, names: { a?: string; b?: string } = {}): Promise<[string, string]> {
    this.links += 1;
    const tmpA = `sw${process.pid.toString(36)}${this.links}a`.slice(0, 15);
    const tmpB = `sw${process.pid.toString(36)}${this.links}b`.slice(0, 15);
    await run('ip', ['link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB]);
    if (a === 'root') this.rootLinks.push(tmpA);
    const place = async (dev: string, ns: Netns | 'root', address: string, finalName: string | undefined): Promise<string> => {
      if (ns !== 'root') await run('ip', ['link', 'set', dev, 'netns', ns.name]);
      const inNs = (args: string[]): Promise<string> => (ns === 'root' ? run('ip', args) : ns.exec('ip', args));
      let name = dev;
      if (finalName !== undefined && ns !== 'root') {
        await inNs(['link', 'set', dev, 'name', finalName]);
        name = finalName;
      }
      await inNs(['addr', 'add', address, 'dev', name]);
      await inNs(['link', 'set', name, 'up']);
      return name;
    };
    return [await place(tmpA, a, aAddress, names.a), await place(tmpB, b, bAddress, names.b)];
  }

  /** Kills what runs in the lab's namespaces, deletes them and the root ends of its links. Idempotent. */
  teardown(): Promise<void> {
    this.tornDown ??= (async () => {
      for (const child of this.children) child.kill('SIGKILL');
      await Promise.all([...this.children].map(waitForExit));
      for (const ns of this.namespaces) await killNamespacePids(ns.name);
      for (const link of this.rootLinks) await execa('ip', ['link', 'del', link], { reject: false });
      for (const ns of this.namespaces) await execa('ip', ['netns', 'del', ns.name], { reject: false });
    })();
    return this.tornDown;
  }
}

/**
 * A host's firewall: nothing inbound but replies to its own connections (and loopback). Outbound
 * is open unless `onlyTo` lists the address:port pairs it may reach. The `inbound_dropped` counter
 * shows that connection attempts arrived and were dropped.
 */
export function hostFirewall(options: { onlyTo?: Array<{ address: string; port: number }> } = {}): string {
  const outbound = options.onlyTo
    ? [
        'policy drop;',
        'oif "lo" accept',
        'ct state established,related accept',
        ...options.onlyTo.map((t) => `ip daddr ${t.address} tcp dport ${t.port} accept`),
        'counter name outbound_dropped drop',
      ]
    : ['policy accept;'];
  return `
table inet seedwire_host {
  counter inbound_dropped {}
  counter outbound_dropped {}
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    counter name inbound_dropped drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
  }
  chain output {
    type filter hook output priority filter; ${outbound.join('\n    ')}
  }
}
`;
}

/**
 * A NAT router: forwards new connections only from the LANs out of `wan` (the
 * `wan_inbound_dropped` counter shows what came in from outside and was dropped), replies back, and
 * masquerades them behind its WAN address. Strict conntrack (tcp_loose=0): a packet of a flow the
 * router no longer tracks (its mapping expired or was flushed) is invalid and dropped, as on a
 * real NAT gateway, instead of being adopted as a new mapping.
 */
export function routerRuleset(wan: string, lans: string[]): string {
  return `
table inet seedwire_router {
  counter wan_inbound_dropped {}
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname { ${lans.map((l) => `"${l}"`).join(', ')} } oifname "${wan}" ct state new accept
    iifname "${wan}" counter name wan_inbound_dropped drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "${wan}" masquerade
  }
}
`;
}

export interface NatHost {
  ns: Netns;
  /** Its address on its private network. */
  address: string;
  /** The router's address on that network (the host's gateway). */
  gateway: string;
}

export interface NatTopology {
  lab: NetLab;
  router: Netns;
  /** The root namespace's end of the WAN link: where the controller listens. */
  controllerAddress: string;
  /** The router's WAN address: what the controller sees as every agent's address. */
  routerWan: string;
  hosts: NatHost[];
}

/** A free 10.X.0.0/16 for this run: no route or address in the root namespace other than the default. */
async function pickPrivateBlock(): Promise<number> {
  const used = await run('ip', ['-4', 'route', 'show', 'table', 'all']);
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const x = 100 + Math.floor(Math.random() * 150);
    if (!used.includes(`10.${x}.`)) return x;
  }
  throw new Error('no free 10.X.0.0/16 block for the test network');
}

/**
 * The controller's side (root namespace, on a veth the lab made) — router (masquerading) — one
 * private /24 per host, each host behind `hostFirewall()`. The root namespace gets a route to the
 * private networks through the router (removed with the link), so a connection attempt from the
 * controller's side meets the router's filter instead of leaving through the machine's default
 * route; from inside the router (on the hosts' own networks) an attempt meets the host firewall.
 */
export async function buildNatTopology(lab: NetLab, options: { hosts: number }): Promise<NatTopology> {
  const x = await pickPrivateBlock();
  const router = await lab.namespace('router');
  const controllerAddress = `10.${x}.0.1`;
  const routerWan = `10.${x}.0.2`;
  const [rootEnd] = await lab.veth('root', `${controllerAddress}/30`, router, `${routerWan}/30`, { b: 'wan' });
  await run('ip', ['route', 'add', `10.${x}.0.0/16`, 'via', routerWan, 'dev', rootEnd]);
  await router.sysctl('net.ipv4.ip_forward', 1);
  await router.sysctl('net.netfilter.nf_conntrack_tcp_loose', 0);
  const hosts: NatHost[] = [];
  const lans: string[] = [];
  for (let i = 1; i <= options.hosts; i += 1) {
    const ns = await lab.namespace(`host${i}`);
    const gateway = `10.${x}.${i}.1`;
    const address = `10.${x}.${i}.2`;
    await lab.veth(router, `${gateway}/24`, ns, `${address}/24`, { a: `lan${i}`, b: 'eth0' });
    await ns.exec('ip', ['route', 'add', 'default', 'via', gateway]);
    await ns.nft(hostFirewall());
    hosts.push({ ns, address, gateway });
    lans.push(`lan${i}`);
  }
  await router.nft(routerRuleset('wan', lans));
  return { lab, router, controllerAddress, routerWan, hosts };
}
