/**
 * Command output in flight when a link or a controller dies (docs/reliability.md, "Output in
 * flight"): the agent keeps what it sent until the controller acknowledges it as stored, sends it
 * again after a reconnect, and the controller stores each frame once. Real controller and agent
 * processes, a real TCP proxy between them that swallows bytes on demand.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../client/api.js';
import { startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'output-acks-token';
/** One line (one frame) long enough to tell the command's output from heartbeats and facts in the proxy's counters. */
const FIRST = `${'a'.repeat(50_000)}\n`;
const SECOND = 'second\n';

describe('output in flight when a link or the controller dies', () => {
  let dir: string;
  let controller: RunningController;
  let proxy: TcpProxy;
  let run = 0;
  const client = (): ApiClient => new ApiClient({ baseUrl: controller.url, token: controller.adminToken });
  const go = (step: string): void => writeFileSync(join(dir, `${run}.${step}`), '');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-output-acks-'));
    // Says it started (RUN.started), prints FIRST once told to (a file named RUN.go1), then SECOND
    // once told again (RUN.go2).
    writeFileSync(
      join(dir, 'talk.sh'),
      // Each wait gives up once the test's directory is gone (a failed test leaves no command behind).
      `touch ${dir}/$1.started\nuntil [ -e ${dir}/$1.go1 ]; do [ -d ${dir} ] || exit 3; sleep 0.02; done\nhead -c 50000 /dev/zero | tr '\\0' a; echo\nuntil [ -e ${dir}/$1.go2 ]; do [ -d ${dir} ] || exit 3; sleep 0.02; done\necho second\n`,
    );
    controller = await startController({ agentToken: TOKEN });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(controller.url).port) });
    const customCommands = Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`talk${i + 1}`, `bash ${dir}/talk.sh ${i + 1}`]));
    startAgent({ controllerUrl: proxy.url(), token: TOKEN, id: 'talker', config: { customCommands } });
    await waitFor(async () => (await client().agents()).some((a) => a.id === 'talker' && a.connected), { timeoutMs: 30_000, what: 'agent connected' });
  });

  beforeEach(() => {
    run += 1;
    proxy.setMode('forward');
  });

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    await proxy?.close();
    controller?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function startTalk(): Promise<string> {
    const op = await client().runOp('talker', 'custom-command', { name: `talk${run}` }, { wait: 0 });
    expect(op.state).toBe('running');
    // The call reached the agent before the test starts swallowing what the controller sends.
    await waitFor(() => existsSync(join(dir, `${run}.started`)), { timeoutMs: 30_000, what: 'the command started' });
    return op.id;
  }

  async function finishTalk(id: string): Promise<void> {
    go('go2');
    await waitFor(async () => (await client().operation(id)).state !== 'running', { timeoutMs: 30_000, what: 'operation ended' });
    expect(await client().operation(id)).toMatchObject({ state: 'succeeded', exitCode: 0 });
    // Every byte once, in order: nothing lost with the link, nothing stored twice.
    expect(await client().outputText(id)).toBe(FIRST + SECOND);
  }

  /** Lets the command print FIRST into a black hole: the agent wrote it into its socket; the controller never saw it. */
  async function swallowFirst(): Promise<void> {
    proxy.setMode('blackhole');
    const swallowed = proxy.bytesSwallowedUp;
    go('go1');
    await waitFor(() => proxy.bytesSwallowedUp - swallowed >= FIRST.length, { timeoutMs: 30_000, what: 'the output frame swallowed' });
  }

  async function storedOnceSentAgain(id: string): Promise<void> {
    await waitFor(async () => (await client().outputText(id)) === FIRST, { timeoutMs: 30_000, what: 'the frame sent again and stored' });
    await finishTalk(id);
  }

  it('a frame swallowed on its way is sent again after the agent reconnects, and stored once', async () => {
    const id = await startTalk();
    await swallowFirst();
    proxy.setMode('forward');
    proxy.cut();
    await storedOnceSentAgain(id);
  });

  it('a frame the controller stored but whose ack was lost is stored once after the controller restarts', async () => {
    const id = await startTalk();
    proxy.setMode('blackhole-down'); // the agent's frames arrive; the controller's acks do not
    go('go1');
    await waitFor(async () => (await client().outputText(id)) === FIRST, { timeoutMs: 30_000, what: 'the frame stored' });
    await controller.kill();
    proxy.setMode('forward');
    const up = proxy.bytesUp;
    controller = await controller.restart();
    // The agent sends the unacknowledged line again to the new process, which already stored it.
    await waitFor(() => proxy.bytesUp - up >= FIRST.length, { timeoutMs: 30_000, what: 'the frame sent again' });
    await waitFor(async () => (await client().agents()).some((a) => a.id === 'talker' && a.connected), { timeoutMs: 30_000, what: 'agent back' });
    await finishTalk(id);
  });

  it('a frame in flight when the controller is SIGKILLed reaches the restarted controller', async () => {
    const id = await startTalk();
    await swallowFirst();
    await controller.kill();
    proxy.setMode('forward');
    proxy.cut();
    controller = await controller.restart();
    await storedOnceSentAgain(id);
  });
});
