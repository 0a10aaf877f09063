/**
 * The real controller and agent processes stop on SIGTERM even when whatever read their log has
 * gone (a dead pipe: a stopped `tee`, a killed parent such as `make demo`'s, a restarted log
 * collector). pino's buffered destination used to retry its last write to the closed stdout for
 * ever at exit (sonic-boom's flushSync on EPIPE): the controller never exited.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../shared/node-flags.js';
import { makeTempDir, PROJECT_ROOT, stopAllAgents } from '../helpers/agent.js';

const TOKEN = 'stop-without-log-reader-token-0123';
const live = new Set<ChildProcess>();

afterEach(() => {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
});
// The dirs makeTempDir created.
afterAll(stopAllAgents);

/** Starts `entry` with its stdout on a pipe, resolves once a line matching `ready` came out. */
async function startReading(entry: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', entry, ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, SEEDWIRE_AGENT_TOKEN: TOKEN, SEEDWIRE_ADMIN_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      seen += chunk;
      if (ready.test(seen)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`${entry} exited (${code}) before ${ready}: ${seen}`)));
  });
  return child;
}

/** Closes the reading end of the child's stdout, sends SIGTERM, and says how the child ended. */
async function stopWithoutReader(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'still running after 15 s'> {
  child.stdout!.destroy();
  child.stderr!.destroy();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'still running after 15 s'>((resolve) => (timer = setTimeout(() => resolve('still running after 15 s'), 15_000)));
  try {
    return await Promise.race([exited, hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe('SIGTERM after the log reader has gone', () => {
  for (const pretty of [false, true]) {
    const how = pretty ? 'human-readable logs' : 'JSON logs';

    it(`the controller stops (${how})`, async () => {
      const dir = makeTempDir('seedwire-stop-ctl-');
      // Its own "listening" line (not fastify's "Server listening at"): its signal handlers are set right after.
      const ready = pretty ? /\): listening\s*$/m : /"msg":"listening"/;
      const child = await startReading('server-stub/main.ts', ['--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), ...(pretty ? ['--log-pretty'] : [])], ready);
      expect(await stopWithoutReader(child)).toEqual({ code: 0, signal: null });
    });

    it(`the agent stops (${how})`, async () => {
      const dir = makeTempDir('seedwire-stop-agent-');
      const config = join(dir, 'agent.json');
      // A controller that is not there: the agent keeps redialing, its log says so.
      writeFileSync(config, JSON.stringify({ controller: 'ws://127.0.0.1:9/agent', id: 'stop-agent', token: TOKEN, stateDir: join(dir, 'state') }));
      // Its signal handlers are set right after this line.
      const child = await startReading('agent/main.ts', ['--config', config, ...(pretty ? ['--log-pretty'] : [])], /seedwire-agent started/);
      expect(await stopWithoutReader(child)).toEqual({ code: 0, signal: null });
    });
  }
});
