/**
 * Starts real seedwire-agent processes (through tsx, from the source tree) for integration tests.
 * Every process started is tracked; call `stopAllAgents()` in afterEach.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Waitable } from './wait.js';
import { NODE_FLAGS } from '../../shared/node-flags.js';

export const PROJECT_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface StartAgentOptions {
  controllerUrl: string;
  token: string;
  id: string;
  stateDir?: string;
  /** Merged over the generated config (controller, token, id, stateDir, fast advanced timings). */
  config?: Record<string, unknown>;
  env?: Record<string, string>;
  extraArgs?: string[];
  /** Run this bundled agent (dist/seedwire-agent.mjs or a copy) with plain node from its own directory instead of the source tree. */
  bundle?: string;
  /** A command prefix that execs the agent in place, e.g. `ip netns exec NS` (test/helpers/netns.ts). */
  prefix?: string[];
}

export interface AgentProcess {
  child: ChildProcess;
  configFile: string;
  stateDir: string;
  logs: Waitable<LogLine>;
  /** Raw stdout lines that were not JSON. */
  stdoutText: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(pred: (line: LogLine) => boolean, options?: { timeoutMs?: number; what?: string }): Promise<LogLine>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started = new Set<AgentProcess>();
const tempDirs = new Set<string>();

export function makeTempDir(prefix = 'seedwire-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Spawns the agent CLI with the given argv (for flag and config error tests). */
export function spawnAgentCli(args: string[], env: Record<string, string> = {}, prefix: string[] = []): ChildProcess {
  const argv = [...prefix, process.execPath, ...NODE_FLAGS, '--import', 'tsx', 'agent/main.ts', ...args];
  return spawn(argv[0]!, argv.slice(1), {
    cwd: PROJECT_ROOT,
    env: { ...process.env, SEEDWIRE_AGENT_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function spawnBundledAgent(bundle: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [bundle, ...args], {
    cwd: dirname(bundle),
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function startAgent(options: StartAgentOptions): AgentProcess {
  const dir = makeTempDir('seedwire-agent-');
  const stateDir = options.stateDir ?? join(dir, 'state');
  const config = {
    controller: options.controllerUrl,
    token: options.token,
    id: options.id,
    stateDir,
    ...options.config,
    advanced: { startupJitterMs: 0, reconnectBaseMs: 50, reconnectCapMs: 500, killGraceMs: 2_000, ...(options.config?.advanced as object | undefined) },
  };
  const configFile = join(dir, 'agent.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const args = ['--config', configFile, ...(options.extraArgs ?? [])];
  const child = options.bundle === undefined ? spawnAgentCli(args, options.env, options.prefix) : spawnBundledAgent(options.bundle, args, options.env);
  const logs = new Waitable<LogLine>();
  const stdoutText: string[] = [];
  let stderr = '';
  let pending = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        stdoutText.push(line);
      }
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  const agent: AgentProcess = {
    child,
    configFile,
    stateDir,
    logs,
    stdoutText,
    stderr: () => stderr,
    exited,
    waitForLog: (pred, opts) => logs.waitFor(pred, opts),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const result = await exited;
      started.delete(agent);
      return result;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      const result = await exited;
      started.delete(agent);
      return result;
    },
  };
  started.add(agent);
  return agent;
}

/** Kills every agent still running and removes the temp dirs; for afterEach. */
export async function stopAllAgents(): Promise<void> {
  await Promise.all([...started].map((agent) => agent.kill()));
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
