/**
 * Serves the web console's static files: `GET /` (index.html) and `GET /console/*` from the
 * esbuild output (dist/console by default). Static files need no auth: the API behind them does.
 * Every answer carries a strict self-only Content-Security-Policy and `Cache-Control: no-cache`.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ControllerDeps, ControllerPlugin } from './types.js';

export interface ConsoleRoutesOptions {
  /** Directory holding index.html, app.js, style.css. @default <project>/dist/console */
  dir?: string;
}

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

const NOT_BUILT_MESSAGE = 'console not built: run npm run build';

/** dist/console next to the project root, whether this file runs from source or from dist/. */
export function resolveDefaultConsoleDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = basename(dirname(here)) === 'dist' ? resolve(here, '..', '..') : resolve(here, '..');
  return resolve(root, 'dist', 'console');
}

/**
 * Registers the console routes. Also usable directly as a controller plugin: called with the
 * controller's deps (which carry no `dir`), it serves the default directory.
 */
export async function registerConsoleRoutes(app: FastifyInstance, opts: ConsoleRoutesOptions | ControllerDeps = {}): Promise<void> {
  const dir = resolve('dir' in opts && typeof opts.dir === 'string' ? opts.dir : resolveDefaultConsoleDir());

  function setCommonHeaders(reply: FastifyReply): void {
    reply.header('Content-Security-Policy', CONSOLE_CSP);
    reply.header('Cache-Control', 'no-cache');
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('X-Frame-Options', 'DENY');
  }

  async function sendFile(reply: FastifyReply, relative: string): Promise<FastifyReply> {
    setCommonHeaders(reply);
    const indexPath = resolve(dir, 'index.html');
    if (!(await isFile(indexPath))) {
      return reply.code(503).type('text/plain; charset=utf-8').send(`${NOT_BUILT_MESSAGE} (no ${indexPath})\n`);
    }
    const file = resolve(dir, relative);
    // Refuse anything that resolves outside the console directory (../, encoded or not).
    if (!file.startsWith(dir + sep) || !(await isFile(file))) {
      return reply.code(404).type('application/json; charset=utf-8').send({ error: { code: 'SEEDWIRE_NOT_FOUND', message: `no console file ${relative}` } });
    }
    const body = await readFile(file);
    return reply.code(200).type(CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream').send(body);
  }

  app.get('/', async (_request, reply) => sendFile(reply, 'index.html'));
  app.get('/console', async (_request, reply) => reply.redirect('/console/', 302));
  app.get('/console/', async (_request, reply) => sendFile(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>('/console/*', async (request, reply) => sendFile(reply, request.params['*']));
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** registerConsoleRoutes as a controller plugin serving the default directory: `plugins: [consolePlugin]`. */
export const consolePlugin: ControllerPlugin = registerConsoleRoutes;
