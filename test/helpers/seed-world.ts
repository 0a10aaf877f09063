/**
 * A seed machine on scripted agents for unit tests: the real SeedMachine, a real SQLite store
 * (':memory:' with the real migrations), the real event bus, and a MemoryHub standing in for the
 * network. The agents answer every op a seed uses like healthy hosts; a test overrides the ops it
 * is about (`source.on(op, behaviour)`).
 */
import type { SeedOwnership } from '../../server-stub/seed/lease.js';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import type { Facts } from '../../shared/frames.js';
import { createEventBus, type SeedwireEventBus } from '../../server-stub/events/bus.js';
import { SeedMachine } from '../../server-stub/seed/machine.js';
import type { SeedMethodName } from '../../server-stub/seed/methods/index.js';
import type { AuditRecord, SeedView } from '../../server-stub/seed/types.js';
import { createAudit } from '../../server-stub/ops/audit.js';
import { createOperationRunner } from '../../server-stub/ops/runner.js';
import { applyMigrations } from '../../server-stub/store/migrations.js';
import { storeOnDatabase } from '../../server-stub/store/sqlite.js';
import type { Store } from '../../server-stub/store/types.js';
import { answer, makeFacts, MemoryHub, ScriptedAgent, scriptedTransfer, type Behaviour, type ScriptedTransfer, type TransferScript } from './memory-hub.js';
import { Waitable } from './wait.js';

export const SIZE = { bytes: 1024 * 1024, files: 3 } as const;

export interface SeedWorld {
  db: Database.Database;
  store: Store;
  bus: SeedwireEventBus;
  hub: MemoryHub;
  machine: SeedMachine;
  source: ScriptedAgent;
  target: ScriptedAgent;
  transfer: ScriptedTransfer;
  audits: AuditRecord[];
  /** Seeds as they are published (wait on it with `settled`). */
  published: Waitable<SeedView>;
  /** Whether the source's MySQL runs now (mysql-stop/-start change it). */
  sourceRunning: boolean;
  /** Calls made through the current hub since `mark()`, as `agent:op`. */
  callsSince(mark: number): string[];
  mark(): number;
  /** The controller stops (close()) and starts again on the same database and agents; returns the new machine. */
  restart(): Promise<SeedMachine>;
  dispose(): Promise<void>;
}

export function sourceFactsFor(method: SeedMethodName): Partial<Facts> {
  if (method === 'snapshot') return { snapshotBackend: 'btrfs' };
  if (method === 'backup') return { backupTool: 'mariabackup' };
  return {};
}

export interface SeedWorldOptions {
  /** Only the source's facts follow it (snapshot backend, backup tool); create() still picks the method. */
  method?: SeedMethodName;
  source?: Partial<Facts>;
  target?: Partial<Facts>;
  transfer?: Partial<TransferScript>;
  sourceRunning?: boolean;
  /** @default 5_000 ms */
  reconnectWaitMs?: number;
  /** Cluster mode: the machine leases its seeds (seed/lease.ts). */
  ownership?: SeedOwnership;
}

export function createSeedWorld(options: SeedWorldOptions = {}): SeedWorld {
  const source = new ScriptedAgent('src', makeFacts({ hostname: 'src', mysqlRunning: true, ...sourceFactsFor(options.method ?? 'cold'), ...options.source }));
  const target = new ScriptedAgent('dst', makeFacts({ hostname: 'dst', ...options.target }));
  const transfer = scriptedTransfer({ ...SIZE, ...(options.method === 'backup' ? { sent: { tool: 'mariabackup' } } : {}), ...options.transfer });
  const db = new Database(':memory:');
  applyMigrations(db);
  const bus = createEventBus();
  const audits: AuditRecord[] = [];
  const published = new Waitable<SeedView>();
  bus.subscribe((event) => {
    if (event.type === 'seed' && typeof event.data === 'object' && event.data !== null && 'id' in event.data && typeof event.data.id === 'string') published.push(event.data as SeedView);
  });
  const log = pino({ level: 'silent' });
  const store = storeOnDatabase(db, '/nonexistent');
  const runnerAudit = createAudit(store.audit, bus);
  // A controller process: its own operation runner over the hub (seed steps are operations).
  const newMachine = (hub: MemoryHub): SeedMachine => {
    const operations = createOperationRunner({ hub, store, bus, audit: runnerAudit, log });
    return new SeedMachine({
      store,
      hub,
      operations,
      bus,
      audit: async (record) => {
        audits.push(record);
      },
      log,
      reconnectWaitMs: options.reconnectWaitMs ?? 5_000,
      ownership: options.ownership ?? null,
    });
  };

  const firstHub = new MemoryHub([source, target]);
  const world: SeedWorld = {
    db,
    store,
    bus,
    hub: firstHub,
    machine: newMachine(firstHub),
    source,
    target,
    transfer,
    audits,
    published,
    sourceRunning: options.sourceRunning ?? true,
    callsSince: (mark) => world.hub.calls.items.slice(mark).map((c) => `${c.agentId}:${c.op}`),
    mark: () => world.hub.calls.items.length,
    async restart() {
      await world.machine.close();
      world.hub.close();
      world.hub = new MemoryHub([source, target]);
      world.machine = newMachine(world.hub);
      await world.machine.resumeUnfinished();
      return world.machine;
    },
    async dispose() {
      await world.machine.close();
      world.hub.close();
      bus.dispose();
      db.close();
    },
  };

  const snapshotPath = (name: string): string => `/data/.seedwire-snapshots/seedwire-${name}`;
  source
    .on('mysql-status', () => ({ running: world.sourceRunning }))
    .on('mysql-stop', () => {
      world.sourceRunning = false;
      return { running: false };
    })
    .on('mysql-start', () => {
      world.sourceRunning = true;
      return { running: true };
    })
    .on('seed-source-size', answer(SIZE))
    .on('create-snapshot', (params) => {
      const snapshot = { name: `seedwire-${String(params['name'])}`, path: snapshotPath(String(params['name'])), createdAt: null, sizeBytes: null, mounted: false };
      source.facts?.snapshots.push(snapshot);
      return snapshot;
    })
    .on('mount-snapshot', (params) => {
      const mount = { name: String(params['name']), mountPoint: '/mnt/seedwire', dataPath: '/mnt/seedwire/mysql' };
      if (source.facts) source.facts.mounted = mount;
      return { mountPoint: mount.mountPoint, dataPath: mount.dataPath };
    })
    .on('unmount-snapshot', () => {
      if (source.facts) source.facts.mounted = null;
      return { mounted: false };
    })
    .on('remove-snapshot', (params) => {
      if (source.facts) source.facts.snapshots = source.facts.snapshots.filter((s) => !s.name.endsWith(String(params['name'])));
      return { removed: true };
    })
    .on('seed-send', transfer.send);
  target
    .on('mysql-status', answer({ running: false }))
    .on('mysql-datadir-available-space', answer({ bytes: 1024 ** 4 }))
    .on('seed-prepare-target', answer({ freeBytes: 1024 ** 4 }))
    .on('seed-receive', transfer.receive)
    .on('seed-finalize-target', (params) => ({ started: params['startMysql'] === true, running: params['startMysql'] === true }))
    .on('seed-cleanup-target', answer({ cleaned: true, reason: 'partial data removed' }));
  return world;
}

export function isFinished(seed: SeedView | null): boolean {
  return seed !== null && (seed.state === 'succeeded' || seed.state === 'failed' || seed.state === 'aborted');
}

/** Resolves with the seed once it has finished (succeeded, failed or aborted). */
export async function settled(world: SeedWorld, id: string): Promise<SeedView> {
  await world.published.waitFor((seed) => seed.id === id && isFinished(seed), { what: `seed ${id} to finish` });
  return (await world.machine.get(id))!;
}

/** Runs the first time as `first`, every later time as the agent's behaviour before the override. */
export function once(agent: ScriptedAgent, op: Parameters<ScriptedAgent['on']>[0], first: Behaviour): void {
  const later = agent.behaviours.get(op);
  let ran = false;
  agent.on(op, (params, ctx) => {
    if (ran && later) return later(params, ctx);
    ran = true;
    return first(params, ctx);
  });
}
