/**
 * Params that carry a secret: a seed step's stream token (`data.token`) goes to the agent but
 * never into the operations table, the audit or an event, where every admin and every backup of
 * the database would see it. What is stored is the params with the secret replaced.
 */
export const REDACTED = '[redacted]';

export function withoutSecrets(params: Record<string, unknown>): Record<string, unknown> {
  const data = params.data;
  if (typeof data !== 'object' || data === null || !('token' in data)) return params;
  return { ...params, data: { ...data, token: REDACTED } };
}
