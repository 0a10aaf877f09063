/**
 * Publishes the local status: stateDir/status.json rewritten every `intervalSeconds` (written to a
 * temporary file and renamed, so a reader never sees half a file), and, when `status.listen` is
 * set, a loopback or unix-socket HTTP endpoint answering GET /status with the same JSON — 200 while
 * connected to the controller, 503 otherwise, so `curl -f` is a health check.
 */
import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SeedwireError } from '../../shared/errors.js';
import { buildStatus, type AgentStatus, type StatusSources } from './snapshot.js';

export const STATUS_FILE = 'status.json';

export interface StatusReporterOptions {
  sources: StatusSources;
  stateDir: string;
  intervalMs: number;
  listen: string | undefined;
  log: Logger;
}

export interface StatusReporter {
  /** Resolves once the endpoint (if any) listens; rejects with SEEDWIRE_CONFIG naming status.listen. */
  readonly ready: Promise<void>;
  /** Marks the agent `stopping` (draining on SIGTERM). */
  draining(): void;
  /** Writes the final `stopped` status and closes the endpoint; idempotent. */
  stop(): Promise<void>;
}

function parseListen(listen: string): { path: string } | { host: string; port: number } {
  if (listen.startsWith('/')) return { path: listen };
  const at = listen.lastIndexOf(':');
  return { host: listen.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(listen.slice(at + 1)) };
}

export function startStatusReporter(options: StatusReporterOptions): StatusReporter {
  const { sources, log } = options;
  const file = join(options.stateDir, STATUS_FILE);
  const temp = `${file}.tmp`;
  let phase: AgentStatus['agent'] = 'running';
  let writing: Promise<void> = Promise.resolve();

  /** Never rejects (a failed write is logged and the next interval writes again), so callers may `void` it. */
  const write = (): Promise<void> => {
    const text = `${JSON.stringify(buildStatus(sources, phase), null, 2)}\n`;
    // Chained so two writes never race on the temporary file.
    writing = writing.then(async () => {
      try {
        await writeFile(temp, text, { mode: 0o644 });
        await rename(temp, file);
      } catch (error) {
        log.warn({ err: error, file }, 'cannot write the status file');
      }
    });
    return writing;
  };
  void write();
  const timer = setInterval(() => void write(), options.intervalMs);
  timer.unref();

  let server: Server | undefined;
  let ready = Promise.resolve();
  if (options.listen !== undefined) {
    const target = parseListen(options.listen);
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://status').pathname;
      if (req.method !== 'GET' || (path !== '/status' && path !== '/')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"GET /status"}\n');
        return;
      }
      const status = buildStatus(sources, phase);
      res.writeHead(status.connection.state === 'connected' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(`${JSON.stringify(status)}\n`);
    });
    if ('path' in target) rmSync(target.path, { force: true }); // a stale socket from a crash
    const listening = server;
    ready = new Promise<void>((resolve, reject) => {
      listening.once('error', (error) => reject(new SeedwireError('SEEDWIRE_CONFIG', `config error at status.listen: cannot listen on ${options.listen}: ${error.message}`, { cause: error })));
      listening.listen(target, () => {
        log.info({ listen: options.listen, address: listening.address() }, 'local status endpoint listening');
        resolve();
      });
    });
    ready.catch(() => undefined); // the daemon's owner awaits it; never an unhandled rejection
  }

  let stopping: Promise<void> | undefined;
  return {
    ready,
    draining() {
      phase = 'stopping';
      void write();
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        phase = 'stopped';
        await write();
        if (server?.listening) {
          const closing = server;
          await new Promise<void>((resolve) => closing.close(() => resolve()));
          closing.closeAllConnections();
        }
      })();
      return stopping;
    },
  };
}
