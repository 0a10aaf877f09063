/**
 * The controller's side of the typed operation contract (shared/ops.ts): every answer an agent
 * gives is checked against its op's result schema before any caller sees it, and progress against
 * its progress schema. An agent that answers with the wrong shape fails the call with
 * SEEDWIRE_PROTOCOL naming the op and the field, instead of a cast that breaks somewhere later.
 */
import type { z } from 'zod';
import { SeedwireError } from '../../shared/errors.js';
import { ALL_OP_RESULTS, progressSchemaOf, type OpName, type OpProgressOf, type OpResultOf } from '../../shared/ops.js';

/** Where in the value the first issue is, as `a.b[2]`, or `result` for the value itself. */
function issueAt(error: z.ZodError): { field: string; message: string } {
  const issue = error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replaceAll('.[', '[') : 'result';
  return { field, message: (issue?.message ?? 'invalid').replace(/^Invalid input: /, '') };
}

/** The op's result, validated; SEEDWIRE_PROTOCOL naming the op and the field when it does not match. */
export function checkResult<N extends OpName>(agentId: string, op: N, result: unknown): OpResultOf<N> {
  const schema: z.ZodType = ALL_OP_RESULTS[op];
  const parsed = schema.safeParse(result);
  if (parsed.success) return parsed.data as OpResultOf<N>; // the schema is ALL_OP_RESULTS[N]: its output is OpResultOf<N>
  const { field, message } = issueAt(parsed.error);
  throw new SeedwireError('SEEDWIRE_PROTOCOL', `agent ${agentId} answered '${op}' with a bad result at ${field}: ${message}`, { details: { op, field } });
}

/**
 * Wraps a typed progress listener so that it only ever sees progress of its op's shape; a frame
 * that does not match is dropped and reported through `onBad` (once per call is the caller's
 * choice; the frame is never fatal: progress is advisory, the result is what counts).
 */
export function checkedProgress<N extends OpName>(
  op: N,
  listener: (data: OpProgressOf<N>) => void,
  onBad: (field: string, message: string) => void,
): (data: Record<string, unknown>) => void {
  const schema = progressSchemaOf(op);
  return (data) => {
    if (!schema) return onBad('progress', `'${op}' reports no progress`);
    const parsed = schema.safeParse(data);
    if (!parsed.success) {
      const { field, message } = issueAt(parsed.error);
      return onBad(field, message);
    }
    listener(parsed.data as OpProgressOf<N>); // the schema is OP_PROGRESS[N]
  };
}
