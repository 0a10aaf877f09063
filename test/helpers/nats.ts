/**
 * A real nats-server for cluster tests: on 127.0.0.1 and a free port, its store dir in a temp dir,
 * ready once it logs "Server is ready". Every server started here is tracked; stopAllNatsServers()
 * stops what a test left running and removes the temp dirs (afterEach/afterAll, so also after a failure).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The nats-server binary (Debian installs it in /usr/sbin or /usr/bin), or null. */
export function natsServerBinary(): string | null {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/bin', '/sbin']) {
    if (dir !== '' && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  return null;
}

export interface NatsServer {
  url: string;
  port: number;
  /** What nats-server logged so far (it logs to stderr). */
  output(): string;
  readonly running: boolean;
  /** SIGTERM and wait for the exit (it can be started again with restart()). */
  stop(): Promise<void>;
  /** Stops it if running, then starts it again on the same port and waits until it is ready. */
  restart(): Promise<void>;
  /** stop() and remove its temp dir. */
  dispose(): Promise<void>;
}

const live = new Set<NatsServer>();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export async function startNatsServer(options: { readyTimeoutMs?: number } = {}): Promise<NatsServer> {
  const binary = natsServerBinary();
  if (binary === null) throw new Error('nats-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-nats-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  let text = '';

  function launch(): Promise<void> {
    const proc = spawn(binary!, ['-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'store')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`nats-server not ready within ${options.readyTimeoutMs ?? 15_000} ms:\n${text}`));
      }, options.readyTimeoutMs ?? 15_000);
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (chunk: string) => {
        text += chunk;
        if (!ready && text.includes('Server is ready')) {
          ready = true;
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        if (ready) return;
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code ?? signal}) before it was ready:\n${text}`));
      });
    });
  }

  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    output: () => text,
    get running() {
      return child !== null && child.exitCode === null && child.signalCode === null;
    },
    async stop() {
      const proc = child;
      if (proc === null) return;
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await waitForExit(proc);
    },
    async restart() {
      await server.stop();
      await launch();
    },
    async dispose() {
      await server.stop();
      live.delete(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(server);
  try {
    await launch();
  } catch (error) {
    await server.dispose();
    throw error;
  }
  return server;
}

/** Stops every server started here and removes their temp dirs. */
export async function stopAllNatsServers(): Promise<void> {
  await Promise.all([...live].map((server) => server.dispose()));
}
