/**
 * The systemd units in packaging/systemd/ pass `systemd-analyze verify` with no warning at all
 * (verify exits 0 on unknown keys and bad values, so any output fails), and keep the promises the
 * README makes about them; the example agent config loads with the real loader.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readConfigFile, validateConfig } from '../../agent/config/load.js';
import { NODE_FLAGS } from '../../shared/node-flags.js';
import { PROJECT_ROOT } from '../helpers/agent.js';
import { missingTools } from '../helpers/requirements.js';

const UNITS = ['seedwire-agent.service', 'seedwire-controller.service'];
const missing = missingTools(['systemd-analyze']);
const dir = mkdtempSync(join(tmpdir(), 'sw-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function unitText(name: string): string {
  return readFileSync(join(PROJECT_ROOT, 'packaging', 'systemd', name), 'utf8');
}

describe('packaging', () => {
  it.skipIf(missing !== null)('systemd-analyze verify accepts both units without a warning', () => {
    const paths = UNITS.map((name) => {
      // verify checks that ExecStart's program exists: point it at this node.
      const path = join(dir, name);
      writeFileSync(path, unitText(name).replaceAll('/usr/bin/node ', `${process.execPath} `));
      return path;
    });
    const res = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    expect(res.stderr + res.stdout).toBe('');
    expect(res.status).toBe(0);
  });

  it.skipIf(missing !== null)('a misspelt key would be caught (the check is not vacuous)', () => {
    const path = join(dir, 'seedwire-agent.service');
    writeFileSync(path, unitText('seedwire-agent.service').replaceAll('/usr/bin/node ', `${process.execPath} `).replace('RestartSec=5', 'RestartSecs=5'));
    const res = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    expect(res.stderr).toContain("Unknown key 'RestartSecs'");
  });

  it('restart always, tokens from files, never on the command line', () => {
    for (const name of UNITS) {
      const text = unitText(name);
      expect(text).toMatch(/^Restart=always$/m);
      const execStart = /^ExecStart=(.*)$/m.exec(text)?.[1] ?? '';
      expect(execStart).not.toMatch(/token/i);
    }
    const agent = unitText('seedwire-agent.service');
    expect(agent).toMatch(/^LoadCredential=agent-token:\/etc\/seedwire\/agent-token$/m);
    expect(agent).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(agent).toMatch(/^CapabilityBoundingSet=.*CAP_SYS_ADMIN/m); // mount, lvcreate, btrfs
    // No private mount namespace: a snapshot the agent mounts must be the host's mount.
    expect(agent).not.toMatch(/^(ProtectSystem|ProtectHome|PrivateTmp|ReadWritePaths|PrivateDevices|ProtectKernelTunables|ProtectControlGroups)=/m);
    const controller = unitText('seedwire-controller.service');
    expect(controller).toMatch(/^EnvironmentFile=\/etc\/seedwire\/controller\.env$/m);
    expect(controller).toMatch(/^ProtectSystem=strict$/m);
  });

  it('the units and the shebangs of both daemons start node with the V8 flags of shared/node-flags.ts, and the shebang runs', () => {
    const flags = NODE_FLAGS.join(' ');
    expect(flags).not.toBe('');
    for (const name of UNITS) expect(/^ExecStart=(.*)$/m.exec(unitText(name))?.[1]).toMatch(new RegExp(`^/usr/bin/node ${flags} /`));
    for (const entry of ['agent/main.ts', 'server-stub/main.ts']) {
      const shebang = readFileSync(join(PROJECT_ROOT, entry), 'utf8').split('\n')[0] ?? '';
      expect(shebang).toBe(`#!/usr/bin/env -S node ${flags}`);
      // What the kernel does with the line (env splits it with -S); node refuses an unknown flag.
      const argv = shebang.slice(2).split(' ').filter((part) => part !== '');
      const res = spawnSync(argv[0] ?? '', [...argv.slice(1), '-p', 'process.execArgv.filter((a) => a.startsWith("--")).join(" ")'], { encoding: 'utf8', timeout: 30_000 });
      expect(res.stderr).toBe('');
      expect(res.stdout.trim()).toBe(flags);
    }
  });

  it('the example agent config is valid and reads its token from the unit credential', () => {
    const config = validateConfig(readConfigFile(join(PROJECT_ROOT, 'packaging', 'agent.yaml')));
    expect(config.tokenFile).toBe('/run/credentials/seedwire-agent.service/agent-token');
    expect(config.stateDir).toBe('/var/lib/seedwire-agent');
    expect(config.status.listen).toBe('/run/seedwire-agent/status.sock');
  });
});
