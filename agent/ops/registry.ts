/** All operations this agent offers, by name. */
import { basicOps } from './basic.js';
import { mysqlOps } from './mysql.js';
import { seedOps } from './seed.js';
import { snapshotOps } from './snapshot.js';
import type { OpDefinition } from './types.js';

export function buildOpRegistry(): Map<string, OpDefinition> {
  const registry = new Map<string, OpDefinition>();
  for (const op of [...basicOps, ...mysqlOps, ...snapshotOps, ...seedOps]) {
    if (registry.has(op.name)) throw new Error(`operation '${op.name}' is defined twice`);
    registry.set(op.name, op);
  }
  return registry;
}
