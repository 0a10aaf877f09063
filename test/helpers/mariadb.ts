/**
 * A real MariaDB server for system tests, in its own directories on a free port, controlled by
 * plain bash commands of the kind an agent's config holds. Never touches the system service.
 * Socket, pid file and error log live outside the datadir, so emptying the datadir (a test of
 * delete-mysql-datadir) does not lose track of the server.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execa } from 'execa';
import { isAlive } from './checks.js';

export interface MariaDBOptions {
  /** Everything lives under here (keep it short: a unix socket path has a 107-byte limit). */
  baseDir: string;
  port?: number;
  /** Defaults to baseDir/data; point it into a btrfs subvolume to snapshot it. */
  datadir?: string;
  serverId?: number;
  /** false: use the datadir as it is (a copy of another server's, a snapshot); default true. */
  install?: boolean;
}

export interface MariaDB {
  datadir: string;
  socket: string;
  port: number;
  pidFile: string;
  errorLog: string;
  /** bash -c strings for an agent's mysql.startCommand / stopCommand / statusCommand. */
  startCommand: string;
  stopCommand: string;
  statusCommand: string;
  /** Runs SQL as root over the socket; resolves to the tab-separated output without headers. */
  exec(sql: string): Promise<string>;
  /** Starts the server through startCommand (waits until it answers). */
  start(): Promise<void>;
  /** Stops the server through stopCommand and waits until its process is gone. */
  stop(): Promise<void>;
  /** Creates InnoDB tables t1..t3 with `rows` rows each (from the Sequence engine). */
  loadSampleData(rows: number): Promise<void>;
  /** CHECKSUM TABLE of every base table in the `seedwire_sample` schema: `db.table` → checksum. */
  checksumTables(): Promise<Map<string, string>>;
  /** Kills the server for sure (pid file / command line, SIGTERM then SIGKILL) and removes baseDir. */
  destroy(): Promise<void>;
}

export const SAMPLE_SCHEMA = 'seedwire_sample';

/** Ports this process has handed to a server: a stopped fixture's port stays its own. */
const handedOut = new Set<number>();

/** The kernel's ephemeral range (`ip_local_port_range`): where listen(0) and outgoing sockets take ports. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A port for a MariaDB fixture, below the kernel's ephemeral range. A fixture's server is stopped
 * and started again during a test (a seed's target), its port idle in between; in the ephemeral
 * range any outgoing connection of the other test lane (thousands of them) may take it as its
 * source port meanwhile, and mariadbd then cannot bind it. Below the range only a server that asks
 * for that port by number can hold it.
 */
export async function findFreePort(): Promise<number> {
  const high = ephemeralLow() - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10_000 + Math.floor(Math.random() * (high - 10_000));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between 10000 and ${high}`);
}

function q(path: string): string {
  return `'${path.replace(/'/g, `'\\''`)}'`;
}


/** Processes whose command line names this datadir (exact `--datadir=` argument): only ours. */
async function findServerPids(datadir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (args.some((a) => a.endsWith('mariadbd')) && args.includes(`--datadir=${datadir}`)) pids.push(Number(entry));
  }
  return pids;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(50);
  }
}

export async function createMariaDB(options: MariaDBOptions): Promise<MariaDB> {
  const baseDir = options.baseDir;
  const datadir = options.datadir ?? join(baseDir, 'data');
  const runDir = join(baseDir, 'run');
  const socket = join(runDir, 'mysqld.sock');
  const pidFile = join(runDir, 'mysqld.pid');
  const errorLog = join(baseDir, 'log', 'error.log');
  const port = options.port ?? (await findFreePort());
  const serverId = options.serverId ?? 1 + (port % 100_000);
  if (Buffer.byteLength(socket) > 100) throw new Error(`socket path too long for a unix socket: ${socket}`);

  await mkdir(datadir, { recursive: true });
  await mkdir(runDir, { recursive: true });
  await mkdir(join(baseDir, 'log'), { recursive: true });
  if (options.install !== false) {
    // Its own tmpdir: bootstraps running at the same time collide on temporary tables in /tmp.
    const tmp = join(baseDir, 'tmp');
    await mkdir(tmp, { recursive: true });
    await execa('mariadb-install-db', ['--no-defaults', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--user=root', `--tmpdir=${tmp}`]);
  }

  const serverArgs = [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    `--pid-file=${pidFile}`,
    `--log-error=${errorLog}`,
    '--user=root',
    '--bind-address=127.0.0.1',
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=16M',
    '--log-bin=mysql-bin',
    `--server-id=${serverId}`,
  ]
    .map(q)
    .join(' ');
  const admin = `mariadb-admin --no-defaults --user=root --socket=${q(socket)}`;
  const statusCommand = `${admin} ping >/dev/null 2>&1`;
  // setsid: the server leaves the command's process group, so the agent's group kill on a
  // finished command never reaches it. The loop waits until it answers (at most 60 s).
  const startCommand = `setsid mariadbd ${serverArgs} </dev/null >/dev/null 2>&1 & for i in $(seq 1 600); do ${statusCommand} && exit 0; sleep 0.1; done; echo "mariadbd did not answer within 60 s; its error log ends: $(tail -n 5 ${q(errorLog)} 2>/dev/null | tr '\\n' ' ')" >&2; exit 1`;
  const stopCommand = `${admin} shutdown`;

  const bash = async (command: string): Promise<void> => {
    const result = await execa('bash', ['-c', command], { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
    if (result.exitCode !== 0) throw new Error(`\`${command}\` exited ${result.exitCode}: ${result.stderr}`);
  };

  const db: MariaDB = {
    datadir,
    socket,
    port,
    pidFile,
    errorLog,
    startCommand,
    stopCommand,
    statusCommand,

    async exec(sql) {
      const { stdout } = await execa('mariadb', ['--no-defaults', '--user=root', `--socket=${socket}`, '--batch', '--skip-column-names', '-e', sql]);
      return stdout;
    },

    async start() {
      await bash(startCommand);
    },

    async stop() {
      const pids = await findServerPids(datadir);
      await bash(stopCommand);
      await waitUntil('mariadbd to exit', () => pids.every((pid) => !isAlive(pid)), 60_000);
    },

    async loadSampleData(rows) {
      await db.exec(`CREATE DATABASE IF NOT EXISTS ${SAMPLE_SCHEMA}`);
      for (const table of ['t1', 't2', 't3']) {
        await db.exec(
          `CREATE TABLE ${SAMPLE_SCHEMA}.${table} (id BIGINT PRIMARY KEY, label VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL, created DATETIME NOT NULL) ENGINE=InnoDB;` +
            `INSERT INTO ${SAMPLE_SCHEMA}.${table} SELECT seq, CONCAT('${table}-', MD5(seq)), seq * 1.25, '2026-01-01' + INTERVAL seq SECOND FROM ${SAMPLE_SCHEMA}.seq_1_to_${Math.max(1, Math.floor(rows))};`,
        );
      }
    },

    async checksumTables() {
      const names = (await db.exec(`SELECT table_name FROM information_schema.tables WHERE table_schema='${SAMPLE_SCHEMA}' AND table_type='BASE TABLE' ORDER BY table_name`))
        .split('\n')
        .filter(Boolean);
      const sums = new Map<string, string>();
      if (names.length === 0) return sums;
      const out = await db.exec(`CHECKSUM TABLE ${names.map((n) => `${SAMPLE_SCHEMA}.${n}`).join(', ')} EXTENDED`);
      for (const line of out.split('\n').filter(Boolean)) {
        const [table, checksum] = line.split('\t');
        if (table) sums.set(table, checksum ?? 'NULL');
      }
      return sums;
    },

    async destroy() {
      const pids = new Set(await findServerPids(datadir));
      const fromFile = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (fromFile > 0) pids.add(fromFile);
      for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGTERM');
      try {
        await waitUntil('mariadbd to exit after SIGTERM', () => [...pids].every((pid) => !isAlive(pid)), 15_000);
      } catch {
        for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
        await waitUntil('mariadbd to exit after SIGKILL', () => [...pids].every((pid) => !isAlive(pid)), 10_000);
      }
      if (existsSync(baseDir)) await rm(baseDir, { recursive: true, force: true });
    },
  };
  return db;
}
