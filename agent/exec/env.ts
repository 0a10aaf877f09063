/**
 * The environment host commands run with: the agent's own, without its secrets. The agent's
 * token may come from SEEDWIRE_AGENT_TOKEN; a command (and everything it starts, and anyone who
 * can read its /proc/PID/environ) must not see it.
 */

/** Variables never passed to a command: any SEEDWIRE_* whose name says it holds a secret. */
const SECRET = /^SEEDWIRE_.*(TOKEN|SECRET|PASSWORD|CREDENTIAL)/i;

export function commandEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && !SECRET.test(key)) out[key] = value;
  return out;
}
