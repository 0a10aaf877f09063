/**
 * Configuration enters once: file (YAML or JSON by extension) + flags + env → AgentConfig.
 * Every failure is a SeedwireError('SEEDWIRE_CONFIG') whose message names the key's path, so the
 * CLI can print one line and never start a half-configured daemon.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { SeedwireError } from '../../shared/errors.js';
import { captureProxyEnv } from '../connection/proxy.js';
import { AgentConfigSchema, type AgentConfig, type AgentConfigParsed } from './schema.js';

/** Values given on the command line; they override the file. */
export interface ConfigFlags {
  /** `--controller`, given once or repeated (a list, tried in order). */
  controller?: string | string[];
  token?: string;
  tokenFile?: string;
  id?: string;
  datacenter?: string;
  stateDir?: string;
}

export interface LoadConfigOptions {
  file?: string;
  flags?: ConfigFlags;
  env?: Record<string, string | undefined>;
  /** Defaults to os.hostname(); tests pass their own. */
  hostname?: string;
  /** Base for a relative stateDir; defaults to process.cwd(). */
  cwd?: string;
}

function configError(path: string, message: string, cause?: unknown): SeedwireError {
  return new SeedwireError('SEEDWIRE_CONFIG', `config error at ${path}: ${message}`, { cause, details: { path } });
}

/** Reads a YAML or JSON file into a plain value (not yet validated). */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error: cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  const ext = extname(file).toLowerCase();
  try {
    if (ext === '.json') return JSON.parse(text) as unknown;
    if (ext === '.yaml' || ext === '.yml') return parseYaml(text) as unknown;
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error: ${file} is not valid ${ext.slice(1).toUpperCase()}: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
  throw new SeedwireError('SEEDWIRE_CONFIG', `config error: ${file}: expected a .yaml, .yml or .json file`);
}

/** Describes the first zod issue as `path: message`, unknown keys named one by one. */
export function describeIssue(issue: z.core.$ZodIssue): { path: string; message: string } {
  const base = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '?';
    return { path: base ? `${base}.${key}` : key, message: 'unknown key' };
  }
  const message = / received undefined$/.test(issue.message) ? 'required' : issue.message.replace(/^Invalid input: /, '');
  return { path: base || '(root)', message };
}

/** Merges flags and env over the file's values; a flag wins over its alternative in the file. */
export function mergeConfigSources(fileValue: unknown, flags: ConfigFlags, env: Record<string, string | undefined>): Record<string, unknown> {
  if (fileValue !== undefined && fileValue !== null && (typeof fileValue !== 'object' || Array.isArray(fileValue))) {
    throw configError('(root)', 'expected a mapping of keys');
  }
  const merged: Record<string, unknown> = { ...((fileValue as Record<string, unknown> | null | undefined) ?? {}) };
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw configError('--token-file', 'give --token or --token-file, not both');
  const token = flags.token ?? (flags.tokenFile === undefined ? env.SEEDWIRE_AGENT_TOKEN : undefined);
  if (flags.tokenFile !== undefined) {
    merged.tokenFile = flags.tokenFile;
    delete merged.token;
  } else if (token !== undefined && token !== '') {
    merged.token = token;
    delete merged.tokenFile;
  }
  // One flag is the string form, so its errors name `controller` as a file's string would.
  if (flags.controller !== undefined) merged.controller = Array.isArray(flags.controller) && flags.controller.length === 1 ? flags.controller[0] : flags.controller;
  if (flags.id !== undefined) merged.id = flags.id;
  if (flags.stateDir !== undefined) merged.stateDir = flags.stateDir;
  if (flags.datacenter !== undefined) {
    merged.datacenter = flags.datacenter;
    delete merged.datacenterPattern;
  }
  return merged;
}

/** Validates the merged value against the schema (pure). */
export function validateConfig(value: unknown): AgentConfigParsed {
  const parsed = AgentConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (!issue) throw configError('(root)', 'invalid');
    const { path, message } = describeIssue(issue);
    throw configError(path, message);
  }
  return parsed.data;
}

/** The first capture group of `pattern` applied to the host name, or null. */
export function deriveDatacenter(pattern: string | undefined, hostname: string): string | null {
  if (pattern === undefined) return null;
  const match = new RegExp(pattern).exec(hostname);
  return match?.[1] ?? null;
}

function readTokenFile(file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw configError('tokenFile', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, error);
  }
  if (token === '') throw configError('tokenFile', `${file} is empty`);
  return token;
}

function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw configError('stateDir', `cannot create ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, error);
  }
}

/** Decides token, id, datacenter and stateDir; reads the token file and creates the state dir. */
export function resolveConfig(parsed: AgentConfigParsed, options: { hostname: string; cwd: string; env?: Record<string, string | undefined> }): AgentConfig {
  const { token, tokenFile, id, datacenter, datacenterPattern, stateDir, ...rest } = parsed;
  const resolvedToken = token ?? (tokenFile ? readTokenFile(tokenFile) : null);
  if (!resolvedToken && !rest.tls?.cert) throw configError('token', 'required (or tokenFile, or SEEDWIRE_AGENT_TOKEN)');
  const absoluteStateDir = resolve(options.cwd, stateDir);
  ensureStateDir(absoluteStateDir);
  const defaultId = options.hostname.replace(/[^A-Za-z0-9._:@-]/g, '-').slice(0, 128);
  return {
    ...rest,
    token: resolvedToken,
    id: id ?? defaultId,
    hostname: options.hostname,
    datacenter: datacenter ?? deriveDatacenter(datacenterPattern, options.hostname),
    stateDir: absoluteStateDir,
    proxyEnv: captureProxyEnv(options.env ?? {}),
  };
}

export function loadConfig(options: LoadConfigOptions = {}): AgentConfig {
  const fileValue = options.file === undefined ? undefined : readConfigFile(options.file);
  const merged = mergeConfigSources(fileValue, options.flags ?? {}, options.env ?? {});
  const parsed = validateConfig(merged);
  return resolveConfig(parsed, { hostname: options.hostname ?? osHostname(), cwd: options.cwd ?? process.cwd(), env: options.env ?? {} });
}
