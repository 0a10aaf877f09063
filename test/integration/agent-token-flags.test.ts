/**
 * What the README promises about the agent's token on the command line: `--token` works but warns
 * once (every local user can read a process's arguments) and never logs the token itself;
 * `--token-file` is read without a warning.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { makeTempDir, spawnAgentCli, stopAllAgents } from '../helpers/agent.js';
import { waitFor } from '../helpers/wait.js';

const SECRET = 'agent-flag-token-3f9c1e7d';
const WARNING = 'the token was given on the command line';
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
});
// The state dirs makeTempDir created.
afterAll(stopAllAgents);

/** Starts an agent against a port nothing listens on and collects its output until it logs 'agent starting'. */
async function startAgentWith(args: string[]): Promise<string> {
  const stateDir = makeTempDir('sw-token-flags-');
  const child = spawnAgentCli(['--controller', 'ws://127.0.0.1:9/agent', '--id', 'flags-1', '--state-dir', stateDir, ...args]);
  children.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => output.includes('"agent starting"'), { timeoutMs: 30_000, what: 'the agent to start' });
  return output;
}

describe('the agent token on the command line', () => {
  it('--token works but warns once, without the token in the log', async () => {
    const output = await startAgentWith(['--token', SECRET]);
    expect(output.split(WARNING).length - 1).toBe(1);
    expect(output).not.toContain(SECRET);
  });

  it('--token-file is read without a warning', async () => {
    const file = join(makeTempDir('sw-token-file-'), 'agent-token');
    writeFileSync(file, `${SECRET}\n`, { mode: 0o600 });
    const output = await startAgentWith(['--token-file', file]);
    expect(output).not.toContain(WARNING);
    expect(output).not.toContain(SECRET);
  });
});
