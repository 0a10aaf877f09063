/** Builds the sub-stores over one executor: the same logic for both engines. */
import { SeedStore } from '../seed/store.js';
import { createAgentStore } from './agents.js';
import { createAuditStore } from './audit.js';
import { createIdentityStore } from './identities.js';
import { createOperationStore } from './operations.js';
import { createOutputStore } from './output.js';
import type { SqlExecutor } from './sql.js';
import { createThroughputStore } from './throughput.js';
import type { AdminTokenStore, Store, StoreKind, StoreParts } from './types.js';

export function createStoreParts(sql: SqlExecutor): StoreParts {
  return {
    agents: createAgentStore(sql),
    identities: createIdentityStore(sql),
    operations: createOperationStore(sql),
    output: createOutputStore(sql),
    audit: createAuditStore(sql),
    seeds: new SeedStore(sql),
    throughput: createThroughputStore(sql),
  };
}

export function composeStore(sql: SqlExecutor, engine: { kind: StoreKind; location: string; adminToken: AdminTokenStore; close: () => Promise<void> }): Store {
  let closing: Promise<void> | null = null;
  return {
    ...createStoreParts(sql),
    kind: engine.kind,
    location: engine.location,
    adminToken: engine.adminToken,
    transaction: (fn) => sql.transaction((tx) => fn(createStoreParts(tx))),
    close() {
      closing ??= engine.close();
      return closing;
    },
  };
}
