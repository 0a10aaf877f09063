/**
 * The one-file agent: dist/seedwire-agent.mjs built by scripts/build-dist.mjs (what `make dist`
 * runs), copied alone into an empty directory under /tmp with no node_modules anywhere above it,
 * run with plain `node`, completes a cold seed against a real controller. Then the zstd addon is
 * put beside a copy and a zstd seed runs too.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, startAgent, stopAllAgents } from '../helpers/agent.js';
import { startController, stopAllControllers, type RunningController } from '../helpers/controller.js';
import { seedApi } from '../helpers/seed-api.js';
import { digestTree, serviceCommands } from '../helpers/tree.js';

const TOKEN = 'bundle-token';

function noNodeModulesAbove(dir: string): void {
  for (let at = dir; ; at = dirname(at)) {
    expect(existsSync(join(at, 'node_modules')), `${at}/node_modules must not exist`).toBe(false);
    if (dirname(at) === at) break;
  }
}

describe('the bundled agent (dist/seedwire-agent.mjs)', () => {
  let dir: string;
  let controller: RunningController;
  const { api, agentsReady, seedUntilDone } = seedApi(() => controller);

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/sw-bundle-');
    const { buildAgentBundle } = (await import(join(PROJECT_ROOT, 'scripts', 'build-dist.mjs'))) as {
      buildAgentBundle(outdir: string): Promise<{ outfile: string; addon: string }>;
    };
    await buildAgentBundle(join(dir, 'build'));
    controller = await startController({ agentToken: TOKEN });
  }, 120_000);

  afterAll(async () => {
    await stopAllAgents();
    await stopAllControllers();
    controller?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function seedWithBundles(name: string, withAddon: boolean, compression: string, expectRefusal?: RegExp): Promise<void> {
    const run = join(dir, name);
    const bin = join(run, 'bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(join(dir, 'build', 'seedwire-agent.mjs'), join(bin, 'seedwire-agent.mjs'));
    const addons = ['seedwire-blake3.node', 'seedwire-zstd.node'];
    if (withAddon) for (const addon of addons) copyFileSync(join(dir, 'build', addon), join(bin, addon));
    expect(readdirSync(bin).sort()).toEqual(withAddon ? ['seedwire-agent.mjs', ...addons] : ['seedwire-agent.mjs']);
    noNodeModulesAbove(bin);

    const src = join(run, 'src');
    mkdirSync(join(src, 'shop'), { recursive: true });
    for (let i = 0; i < 4; i += 1) writeFileSync(join(src, 'shop', `t${i}.ibd`), randomBytes(512 * 1024));
    writeFileSync(join(src, 'shop', 'log.ibd'), Buffer.alloc(2 * 1024 * 1024, 7));
    writeFileSync(join(src, 'ibdata1'), randomBytes(256 * 1024));
    mkdirSync(join(run, 'dst'));
    writeFileSync(join(run, 'src.running'), '');

    const ids = { source: `${name}-src`, target: `${name}-dst` };
    const bundle = join(bin, 'seedwire-agent.mjs');
    const source = startAgent({ bundle, controllerUrl: controller.wsUrl, token: TOKEN, id: ids.source, config: { mysql: { datadir: src, ...serviceCommands(join(run, 'src.running')) } } });
    startAgent({ bundle, controllerUrl: controller.wsUrl, token: TOKEN, id: ids.target, config: { mysql: { datadir: join(run, 'dst'), ...serviceCommands(join(run, 'dst.running')) } } });
    await agentsReady([ids.source, ids.target]);
    const started = await source.waitForLog((l) => l.msg === 'seedwire-agent started');
    // BLAKE3 is offered only with its addon beside the bundle; without it the seed hashes with SHA-256.
    const listed = await api<{ capabilities: string[] }>('GET', `/api/agents/${ids.source}`);
    expect(listed.body.capabilities.includes('content-hash-blake3')).toBe(withAddon);
    expect(started['version']).toBe((JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version);

    const created = await api<{ seed: { id: string; method: string; effectiveCompression: string } }>('POST', '/api/seeds', { ...ids, method: 'cold', compression });
    expect(created.status).toBe(202);
    expect(created.body.seed.effectiveCompression).toBe(compression);
    const seed = await seedUntilDone(created.body.seed.id);
    if (expectRefusal) {
      expect(seed.state).toBe('failed');
      expect(seed.error?.message).toMatch(expectRefusal);
      return;
    }
    expect(seed.error).toBeNull();
    expect(seed.state).toBe('succeeded');
    expect(digestTree(join(run, 'dst'))).toEqual(digestTree(src));
    expect(existsSync(join(run, 'src.running'))).toBe(true); // the cold seed started the source again
    expect(existsSync(join(run, 'dst.running'))).toBe(true);
  }

  it('runs its commands through its spawner, started from the bundle alone, without the token in their environment', async () => {
    const bin = join(dir, 'spawner', 'bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(join(dir, 'build', 'seedwire-agent.mjs'), join(bin, 'seedwire-agent.mjs'));
    noNodeModulesAbove(bin);
    const agent = startAgent({
      bundle: join(bin, 'seedwire-agent.mjs'),
      controllerUrl: controller.wsUrl,
      token: '',
      env: { SEEDWIRE_AGENT_TOKEN: TOKEN },
      id: 'bundle-spawner',
      config: { token: undefined, customCommands: { who: `echo "parent $PPID"; env | grep -c ${TOKEN} || true` } },
    });
    await agentsReady(['bundle-spawner']);
    // The first command starts the spawner (and is forked by the agent itself meanwhile).
    const first = await api<{ operation: { state: string } }>('POST', '/api/agents/bundle-spawner/ops/custom-command?wait=30', { params: { name: 'who' } });
    expect(first.body.operation.state).toBe('succeeded');
    const ready = await agent.waitForLog((l) => l.msg === 'command spawner ready', { timeoutMs: 30_000 });
    const run = await api<{ operation: { id: string; state: string; exitCode: number | null } }>('POST', '/api/agents/bundle-spawner/ops/custom-command?wait=30', { params: { name: 'who' } });
    expect(run.body.operation).toMatchObject({ state: 'succeeded', exitCode: 0 });
    const output = await fetch(`${controller.url}/api/operations/${run.body.operation.id}/output?follow=0`, { headers: { authorization: `Bearer ${controller.adminToken}` } });
    expect(await output.text()).toBe(`parent ${String(ready['pid'])}\n0\n`);
  }, 120_000);

  it('runs alone from an empty directory with plain node and completes a cold seed', async () => {
    await seedWithBundles('alone', false, 'gzip');
  }, 120_000);

  it('alone, refuses a zstd seed saying the addon is missing', async () => {
    await seedWithBundles('nozstd', false, 'zstd', /zstd compression is not available on this agent .*seedwire-zstd\.node beside seedwire-agent\.mjs/);
  }, 120_000);

  it('with seedwire-zstd.node and seedwire-blake3.node beside it, seeds with zstd and BLAKE3', async () => {
    await seedWithBundles('addon', true, 'zstd');
  }, 120_000);
});
