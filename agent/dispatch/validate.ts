/** Checks done before a call runs: the op exists, its config sections are set, its params parse. */
import { SeedwireError } from '../../shared/errors.js';
import type { OpName, OpParams } from '../../shared/ops.js';
import type { AgentConfig } from '../config/schema.js';
import type { OpDefinition, OpRequirement } from '../ops/types.js';

const REQUIREMENT_HINTS: Record<OpRequirement, string> = {
  mysql: 'set mysql.datadir (with mysql.startCommand, mysql.stopCommand and mysql.statusCommand) in the agent config',
  snapshot: 'set snapshot.backend (and its section) in the agent config',
  backup: 'set backup.tool in the agent config',
};

export function findOp(registry: ReadonlyMap<string, OpDefinition>, name: string): OpDefinition {
  const op = registry.get(name);
  if (!op) throw new SeedwireError('SEEDWIRE_OP_UNKNOWN', `unknown operation '${name}'`);
  return op;
}

export function checkRequirements(op: OpDefinition, config: AgentConfig): void {
  for (const need of op.requires ?? []) {
    if (config[need] === undefined) {
      throw new SeedwireError('SEEDWIRE_OP_REFUSED', `'${op.name}' needs the ${need} section: ${REQUIREMENT_HINTS[need]}`);
    }
  }
}

export function parseParams(op: OpDefinition, params: unknown): OpParams<OpName> {
  const parsed = op.params.safeParse(params);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const base = issue?.path.map(String).join('.') ?? '';
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '?';
    throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `bad params for '${op.name}' at ${base ? `${base}.${key}` : key}: unknown key`, { details: { field: base ? `${base}.${key}` : key } });
  }
  const field = base || 'params';
  const message = (issue?.message ?? 'invalid').replace(/^Invalid input: /, '');
  throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `bad params for '${op.name}' at ${field}: ${message}`, { details: { field } });
}
