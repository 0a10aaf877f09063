/** Checks an operation's name and params against shared/ops.ts before anything is sent. */
import { SeedwireError } from '../../shared/errors.js';
import { ALL_OP_PARAMS, isKnownOp, isPublicOp, type OpName, type OpParams } from '../../shared/ops.js';

/** Validates params for `op`; `publicOnly` refuses the internal seed-* operations as unknown. */
export function validateOp(op: string, params: unknown, publicOnly: boolean): { op: OpName; params: OpParams<OpName> } {
  if (!isKnownOp(op) || (publicOnly && !isPublicOp(op))) throw new SeedwireError('SEEDWIRE_OP_UNKNOWN', `no operation named '${op}'`);
  const parsed = ALL_OP_PARAMS[op].safeParse(params ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue && issue.path.length > 0 ? `params.${issue.path.join('.')}` : 'params';
    const keys = issue && 'keys' in issue && Array.isArray(issue.keys) ? ` (${issue.keys.join(', ')})` : '';
    throw new SeedwireError('SEEDWIRE_BAD_PARAMS', `${field}: ${issue?.message ?? 'invalid'}${keys}`, { details: { field } });
  }
  return { op, params: parsed.data };
}
