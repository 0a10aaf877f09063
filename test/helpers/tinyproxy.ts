/**
 * A real HTTP CONNECT proxy (Debian's tinyproxy) for the agent's proxy tests: its config written
 * to a temp dir, run in the foreground (optionally inside a network namespace through a command
 * prefix such as `ip netns exec NS`), its log lines kept for assertions. tinyproxy cannot bind
 * port 0, so the port is picked free beforehand (in a fresh namespace any port is free).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Waitable } from './wait.js';

export interface TinyproxyOptions {
  /** Address to listen on. @default 127.0.0.1 */
  listen?: string;
  /** @default a free port on 127.0.0.1 */
  port?: number;
  /** Client addresses or networks admitted (tinyproxy `Allow`). @default [listen] */
  allow?: string[];
  /** Require Proxy-Authorization with this user and password. */
  basicAuth?: { user: string; password: string };
  /** Ports CONNECT may reach (tinyproxy `ConnectPort`); @default any */
  connectPorts?: number[];
  /** Run through this command prefix, e.g. ['ip', 'netns', 'exec', 'ns']. */
  prefix?: string[];
}

export interface Tinyproxy {
  /** http://LISTEN:PORT */
  url: string;
  port: number;
  logs: Waitable<string>;
  /** Resolves with the first log line matching, from the start of the log. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL if it lingers; removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const running = new Set<Tinyproxy>();

/** A TCP port nothing listens on right now (bind port 0, read it, close). */
export async function pickFreePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const listen = options.listen ?? '127.0.0.1';
  const port = options.port ?? (await pickFreePort(listen === '0.0.0.0' ? '127.0.0.1' : listen));
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-tinyproxy-'));
  const lines = [
    `Port ${port}`,
    `Listen ${listen}`,
    'Timeout 600',
    'LogLevel Info',
    'MaxClients 100',
    'DisableViaHeader Yes',
    ...(options.allow ?? [listen]).map((a) => `Allow ${a}`),
    ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
    ...(options.basicAuth ? [`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`] : []),
  ];
  const configFile = join(dir, 'tinyproxy.conf');
  writeFileSync(configFile, `${lines.join('\n')}\n`);
  const prefix = options.prefix ?? [];
  const argv = [...prefix, 'tinyproxy', '-d', '-c', configFile];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = new Waitable<string>();
  let pending = '';
  const onData = (chunk: string): void => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) if (line.trim() !== '') logs.push(line);
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  let stopping: Promise<void> | undefined;
  const proxy: Tinyproxy = {
    url: `http://${listen}:${port}`,
    port,
    logs,
    waitForLog: (pattern, timeoutMs = 10_000) => logs.waitFor((l) => pattern.test(l), { timeoutMs, what: `tinyproxy log ${pattern}` }),
    stop() {
      stopping ??= (async () => {
        running.delete(proxy);
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
          await waitForExit(child);
          clearTimeout(timer);
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  running.add(proxy);
  const exited = waitForExit(child).then(() => {
    throw new Error(`tinyproxy exited before listening:\n${logs.items.join('\n')}`);
  });
  try {
    await Promise.race([proxy.waitForLog(/Accepting connections/), exited]);
  } catch (error) {
    await proxy.stop();
    throw error;
  }
  exited.catch(() => undefined);
  return proxy;
}

/** Stops every tinyproxy still running (afterEach/afterAll). */
export async function stopAllTinyproxies(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}
