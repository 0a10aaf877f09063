/**
 * Where the controller is and which admin token to present. Flags first, then the environment,
 * then the controller's own token file when run beside it. The token never comes from a flag's
 * value (it would show in `ps` and shell history), only from a file or the environment.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ApiClient } from '../client/api.js';
import { CliError, EXIT, usageError } from './exit.js';

export const DEFAULT_CONTROLLER = 'http://127.0.0.1:7070';
/** Relative to the working directory, as `seedwire-controller` creates it by default. */
export const DEFAULT_DATA_DIR = './.seedwire/controller';

export interface GlobalOptions {
  controller?: string;
  tokenFile?: string;
  json?: boolean;
}

/** The environment variables the CLI reads, read once in main.ts. */
export interface CliEnv {
  SEEDWIRE_CONTROLLER?: string | undefined;
  SEEDWIRE_ADMIN_TOKEN?: string | undefined;
  SEEDWIRE_DATA_DIR?: string | undefined;
}

export function resolveControllerUrl(options: GlobalOptions, env: CliEnv): string {
  const raw = options.controller ?? (env.SEEDWIRE_CONTROLLER || undefined) ?? DEFAULT_CONTROLLER;
  const where = options.controller !== undefined ? '--controller' : env.SEEDWIRE_CONTROLLER ? 'SEEDWIRE_CONTROLLER' : 'default';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError(`${where}: not a URL: '${raw}' (expected http(s)://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usageError(`${where}: expected an http:// or https:// URL, got '${raw}'`);
  return url.toString().replace(/\/+$/, '');
}

function readTokenFile(path: string, what: string, missingIsUsage: boolean): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CliError(missingIsUsage ? EXIT.usage : EXIT.unreachable, `${what}: cannot read ${path} (${reason})`);
  }
  const token = text.trim();
  if (token === '') throw new CliError(missingIsUsage ? EXIT.usage : EXIT.unreachable, `${what}: ${path} is empty`);
  return token;
}

export function resolveToken(options: GlobalOptions, env: CliEnv, cwd: string): string {
  if (options.tokenFile !== undefined) return readTokenFile(resolve(cwd, options.tokenFile), '--token-file', true);
  if (env.SEEDWIRE_ADMIN_TOKEN) return env.SEEDWIRE_ADMIN_TOKEN.trim();
  const dataDir = env.SEEDWIRE_DATA_DIR || DEFAULT_DATA_DIR;
  const path = resolve(cwd, join(dataDir, 'admin-token'));
  try {
    return readTokenFile(path, 'admin token', false);
  } catch (error) {
    if (error instanceof CliError) {
      throw new CliError(EXIT.unreachable, `no admin token: give --token-file FILE, set SEEDWIRE_ADMIN_TOKEN, or run beside the controller (${error.message})`);
    }
    throw error;
  }
}

export function createClient(options: GlobalOptions, env: CliEnv, cwd: string): ApiClient {
  const baseUrl = resolveControllerUrl(options, env);
  return new ApiClient({ baseUrl, token: resolveToken(options, env, cwd) });
}
