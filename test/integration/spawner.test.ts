/**
 * The command spawner (agent/exec/spawner/) with real processes: a real spawner child, real bash,
 * runCommand driving it exactly as an op's ctx.run does. Every guarantee of command execution
 * is checked through the spawner, and the spawner's own failure modes: killed mid-command,
 * restarted, direct spawning meanwhile.
 */
import { readFileSync, readlinkSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { commandEnv } from '../../agent/exec/env.js';
import { runCommand, type RunOptions } from '../../agent/exec/run.js';
import { Spawner } from '../../agent/exec/spawner/spawner.js';
import { makeTempDir, stopAllAgents } from '../helpers/agent.js';
import { isAlive, rejectionOf } from '../helpers/checks.js';
import { waitFor } from '../helpers/wait.js';

const spawners = new Set<Spawner>();
const SECRET = 'spawner-test-secret-4b1d';

async function startSpawner(options: { warm?: number } = {}): Promise<Spawner> {
  const spawner = new Spawner({
    log: pino({ level: 'silent' }),
    env: commandEnv({ ...process.env, SEEDWIRE_AGENT_TOKEN: SECRET }),
    restartBaseMs: 20,
    ...options,
  });
  spawners.add(spawner);
  spawner.start();
  await spawner.whenReady();
  return spawner;
}

/** Runs through the spawner, collecting output in arrival order. */
async function run(spawner: Spawner, command: string, options: RunOptions = {}): Promise<{ exitCode: number | null; signal: string | null; timedOut: boolean; isCanceled: boolean; out: string; err: string; chunks: Array<[string, string]> }> {
  const chunks: Array<[string, string]> = [];
  const result = await runCommand(command, {
    spawner,
    killGraceMs: 300,
    ...options,
    onOutput: (stream, text) => {
      chunks.push([stream, text]);
      options.onOutput?.(stream, text);
    },
  });
  const text = (s: string): string => chunks.filter(([n]) => n === s).map(([, t]) => t).join('');
  return { ...result, out: text('stdout'), err: text('stderr'), chunks };
}

afterEach(async () => {
  for (const spawner of spawners) await spawner.stop();
  spawners.clear();
  await stopAllAgents(); // removes the temp dirs
});

describe('the command spawner', () => {
  it('runs commands as its own children, in their own process group, with stdin closed and $$ their own', async () => {
    const spawner = await startSpawner();
    for (let i = 0; i < 4; i += 1) {
      // the first two use waiting bash processes, the next ones whatever is there
      const r = await run(spawner, 'echo "$PPID $$ $BASHPID $(ps -o pgid= -p $$ | tr -d " ")"; readlink /proc/self/fd/0; cat; echo "[$0]"');
      const [ppid, pid, bashpid, pgid] = r.out.split('\n')[0]!.split(' ').map(Number);
      expect(ppid).toBe(spawner.pid);
      expect(pid).toBe(bashpid);
      expect(pgid).toBe(pid);
      expect(r.out.split('\n').slice(1)).toEqual(['/dev/null', '[bash]', '']);
      expect(r.exitCode).toBe(0);
    }
  });

  it('starts bash as bash -c would: no ~/.bashrc read, no descriptor beyond 0-2 left to the command', async () => {
    const home = makeTempDir();
    writeFileSync(join(home, '.bashrc'), 'echo BASHRC-WAS-READ\n');
    const spawner = new Spawner({ log: pino({ level: 'silent' }), env: commandEnv({ PATH: process.env['PATH'], HOME: home }) });
    spawners.add(spawner);
    spawner.start();
    await spawner.whenReady();
    // bash's own descriptors, listed without a pipeline (whose pipe bash would hold for a moment)
    const command = 'for f in /proc/$$/fd/*; do printf "%s " "${f##*/}"; done; echo; echo "$HOME"';
    const direct = await runCommand(command, { env: { HOME: home } });
    expect(direct.stdoutTail).toMatch(/^0 1 2 /);
    for (let i = 0; i < 3; i += 1) expect((await run(spawner, command)).out).toBe(direct.stdoutTail);
  });

  it('streams stdout and stderr in order, whole, with exit codes and signals as bash -c gives them', async () => {
    const spawner = await startSpawner();
    const lines = await run(spawner, 'for i in $(seq 1 3000); do echo "out $i"; if [ $((i % 1000)) = 0 ]; then echo "err $i" >&2; fi; done; exit 7');
    expect(lines.exitCode).toBe(7);
    expect(lines.out).toBe(Array.from({ length: 3000 }, (_, i) => `out ${i + 1}\n`).join(''));
    expect(lines.err).toBe('err 1000\nerr 2000\nerr 3000\n');

    expect((await run(spawner, 'kill -TERM $$')).signal).toBe('SIGTERM');
    expect((await run(spawner, 'kill -KILL $$')).signal).toBe('SIGKILL');
    const syntax = await run(spawner, 'if then fi (');
    expect(syntax.exitCode).toBe(2);
    expect(syntax.err).toContain('syntax error');
    expect(syntax.err).not.toContain('seedwire');
    expect((await run(spawner, 'exit 0')).exitCode).toBe(0);
    // multi-line scripts, quotes and a heredoc survive the trip intact
    const script = await run(spawner, `x='a "b" $c'\ncat <<EOF\n$x\nEOF\nprintf '%s\\n' "\\\\ back"`);
    expect(script.out).toBe('a "b" $c\n\\ back\n');
  });

  it('passes large output through whole, with multi-byte characters split across chunks', async () => {
    const spawner = await startSpawner();
    const r = await run(spawner, 'for i in $(seq 1 20000); do printf "é€😀 %05d\\n" $i; done', { tailBytes: 64 });
    expect(r.exitCode).toBe(0);
    expect(r.out).toBe(Array.from({ length: 20000 }, (_, i) => `é€😀 ${String(i + 1).padStart(5, '0')}\n`).join(''));
    const bytes = await run(spawner, 'head -c 8000000 /dev/zero | tr "\\0" x');
    expect(bytes.out.length).toBe(8_000_000);
  });

  it('runs many commands at once, each with its own output and exit code', async () => {
    const spawner = await startSpawner();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => run(spawner, `for j in 1 2 3; do echo "cmd ${i} line $j"; done; echo "e${i}" >&2; exit ${i % 5}`)));
    results.forEach((r, i) => {
      expect(r.out).toBe(`cmd ${i} line 1\ncmd ${i} line 2\ncmd ${i} line 3\n`);
      expect(r.err).toBe(`e${i}\n`);
      expect(r.exitCode).toBe(i % 5);
    });
  });

  it('cancel: SIGTERM to the whole group, SIGKILL after the grace for what ignores it', async () => {
    const spawner = await startSpawner();
    const dir = makeTempDir();
    const pidFile = join(dir, 'child.pid');
    const abort = new AbortController();
    const running = run(spawner, `trap '' TERM; sleep 300 & echo $! > ${pidFile}; echo started; wait`, {
      signal: abort.signal,
      onOutput: (_s, text) => {
        if (text.includes('started')) abort.abort();
      },
    });
    const r = await running;
    expect(r.isCanceled).toBe(true);
    expect(r.signal).toBe('SIGKILL');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    await waitFor(() => !isAlive(pid), { what: `the grandchild ${pid} to be gone`, timeoutMs: 5_000 });
  });

  it('timeout: the command is stopped and reported as timed out', async () => {
    const spawner = await startSpawner();
    const r = await run(spawner, 'echo begun; sleep 300', { timeoutMs: 200 });
    expect(r).toMatchObject({ timedOut: true, isCanceled: false, signal: 'SIGTERM', out: 'begun\n' });
  });

  it('honours cwd and extra env (a fresh bash), and never passes the agent token', async () => {
    const spawner = await startSpawner();
    const dir = makeTempDir();
    const r = await run(spawner, 'pwd; echo "$EXTRA"; echo "$PPID"; env', { cwd: dir, env: { EXTRA: 'extra-value' } });
    const [pwd, extra, ppid] = r.out.split('\n');
    expect(pwd).toBe(dir);
    expect(extra).toBe('extra-value');
    expect(Number(ppid)).toBe(spawner.pid);
    expect(r.out).toContain(`PATH=${process.env['PATH']}`);
    expect(r.out).not.toContain(SECRET);
    expect((await run(spawner, 'env; echo $SEEDWIRE_AGENT_TOKEN')).out).not.toContain(SECRET);
    // nor does the spawner itself hold it, in its environment or its argv
    const pid = spawner.pid!;
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toContain(SECRET);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toEqual([process.execPath, '--max-old-space-size=32', '--max-semi-space-size=1', '-', 'seedwire-spawner', '']);
  });

  it('listens nowhere: its only channel is the socketpair its parent made', async () => {
    const spawner = await startSpawner();
    const pid = spawner.pid!;
    const inodes = readdirSync(`/proc/${pid}/fd`)
      .map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`))
      .flatMap((target) => /^socket:\[(\d+)\]$/.exec(target)?.[1] ?? []);
    expect(inodes.length).toBeGreaterThan(0);
    const unix = readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1);
    for (const inode of inodes) {
      const row = unix.find((line) => line.trim().split(/\s+/)[6] === inode);
      expect(row, `socket ${inode} is a unix socket`).toBeDefined();
      const cols = row!.trim().split(/\s+/);
      expect(cols[7], `socket ${inode} has no path`).toBeUndefined();
      expect(cols[5], `socket ${inode} is connected, not listening`).toBe('03');
    }
    const tcp = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((f) => readFileSync(f, 'utf8').split('\n').slice(1));
    for (const inode of inodes) expect(tcp.some((line) => line.trim().split(/\s+/)[9] === inode)).toBe(false);
  });

  it('dies mid-command: the command fails saying so, its group is killed, commands go direct, and it comes back', async () => {
    const spawner = await startSpawner();
    const dir = makeTempDir();
    const pidFile = join(dir, 'child.pid');
    const first = spawner.pid!;
    let started!: () => void;
    const begun = new Promise<void>((resolve) => (started = resolve));
    const running = runCommand(`sleep 300 & echo $! > ${pidFile}; echo started; wait`, { spawner, onOutput: (_s, text) => text.includes('started') && started() });
    await begun;
    process.kill(first, 'SIGKILL');
    const error = await rejectionOf(running);
    expect(error.code).toBe('SEEDWIRE_COMMAND_FAILED');
    expect(error.message).toMatch(/command spawner \(pid \d+\) was killed by SIGKILL while the command ran/);
    const grandchild = Number(readFileSync(pidFile, 'utf8').trim());
    await waitFor(() => !isAlive(grandchild), { what: `the grandchild ${grandchild} to be gone`, timeoutMs: 5_000 });

    // Until it is back, commands still run: forked by the caller itself.
    if (!spawner.ready) expect(Number((await run(spawner, 'echo $PPID')).out.trim())).toBe(process.pid);
    await spawner.whenReady();
    expect(spawner.pid).not.toBe(first);
    expect(Number((await run(spawner, 'echo $PPID')).out.trim())).toBe(spawner.pid);
  });

  it('stops cleanly: the spawner and its waiting bash processes are gone', async () => {
    const spawner = await startSpawner({ warm: 3 });
    const pid = spawner.pid!;
    const waiting = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    expect(waiting).toHaveLength(3);
    await spawner.stop();
    spawners.delete(spawner);
    expect(isAlive(pid)).toBe(false);
    await waitFor(() => waiting.every((p) => !isAlive(p)), { what: 'the waiting bash processes to exit', timeoutMs: 5_000 });
  });
});
