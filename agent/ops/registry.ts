/** All operations this agent offers, by name. Other op families are wired in here as they land. */
import { basicOps } from './basic.js';
import type { OpDefinition } from './types.js';

export function buildOpRegistry(): Map<string, OpDefinition> {
  const registry = new Map<string, OpDefinition>();
  for (const op of [...basicOps]) {
    if (registry.has(op.name)) throw new Error(`operation '${op.name}' is defined twice`);
    registry.set(op.name, op);
  }
  return registry;
}
