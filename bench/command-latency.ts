/**
 * The pieces of `make bench`'s command latency line (docs/performance.md, "A command's round
 * trip"): Node's own `spawn('bash')` in this process, and the agent's spawner driven directly,
 * both running `echo hi` as the API's custom command does.
 */
import { spawn } from 'node:child_process';
import pino from 'pino';
import { commandEnv } from '../agent/exec/env.js';
import { runCommand } from '../agent/exec/run.js';
import { Spawner } from '../agent/exec/spawner/spawner.js';

/** `bash -c 'echo hi'` from this process, until its output is read and it has exited. */
export function rawSpawnEchoHi(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', 'echo hi'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', (code) => (code === 0 && out === 'hi\n' ? resolve() : reject(new Error(`raw spawn: exit ${code}, output ${JSON.stringify(out)}`))));
  });
}

/** A spawner as the agent runs it, for `measure(once)`; stop it after. */
export async function startBenchSpawner(): Promise<{ once(): Promise<void>; stop(): Promise<void> }> {
  const spawner = new Spawner({ log: pino({ level: 'warn' }), env: commandEnv(process.env) });
  spawner.start();
  await spawner.whenReady();
  return {
    async once() {
      const result = await runCommand('echo hi', { spawner });
      if (result.exitCode !== 0 || result.stdoutTail !== 'hi\n') throw new Error(`spawner: exit ${result.exitCode}, output ${JSON.stringify(result.stdoutTail)}`);
    },
    stop: () => spawner.stop(),
  };
}
