/**
 * The seed's prechecks: from the hub's facts and a few read-only answers of the two agents,
 * either a plan (method, compression, size) or a refusal naming what is wrong. Nothing is
 * recorded and nothing on a host changes; the method adds its own refusals (methods/).
 */
import { SeedwireError, type ErrorCode } from '../../shared/errors.js';
import type { Facts } from '../../shared/frames.js';
import type { OpName, OpParamsInput, OpResultOf } from '../../shared/ops.js';
import type { AgentHub } from '../hub/types.js';
import { formatBytes } from './format.js';
import { requiredBytes, SEED_LIMITS } from './limits.js';
import { SEED_METHODS, type SeedMethodName } from './methods/index.js';
import type { Compression } from './types.js';

export interface SeedRequest {
  source: string;
  target: string;
  method?: SeedMethodName | undefined;
  compression?: Compression | 'auto' | undefined;
  startTarget?: boolean | undefined;
  maxBytesPerSec?: number | undefined;
  lanes?: number | undefined;
}

export interface SeedPlan {
  method: SeedMethodName;
  compression: Compression;
  /** Transfer lanes (chooseLanes). */
  lanes: number;
  bytesTotal: number;
  /** The precheck stage's message. */
  summary: string;
}

export interface PrecheckDeps {
  hub: Pick<AgentHub, 'agent' | 'isConnected' | 'facts' | 'call'>;
  /** The active seed using this agent on either side, if any. */
  activeSeedOf(agentId: string): Promise<string | null>;
}

function refuse(message: string, code: ErrorCode = 'SEEDWIRE_PRECHECK_FAILED'): never {
  throw new SeedwireError(code, message);
}

/** Snapshot when the source has a snapshot backend, else cold. */
export function chooseMethod(requested: SeedMethodName | undefined, sourceFacts: Facts): SeedMethodName {
  return requested ?? (sourceFacts.snapshotBackend !== 'none' ? 'snapshot' : 'cold');
}

/** `auto`: zstd between datacenters, none within one (or when either side's is unknown). */
export function chooseCompression(requested: Compression | 'auto', sourceFacts: Facts, targetFacts: Facts): { compression: Compression; remote: boolean } {
  const remote = sourceFacts.datacenter !== null && targetFacts.datacenter !== null && sourceFacts.datacenter !== targetFacts.datacenter;
  return { compression: requested === 'auto' ? (remote ? 'zstd' : 'none') : requested, remote };
}

/**
 * Transfer lanes: as requested, else min(SEED_LIMITS.defaultMaxLanes, the CPUs of source and
 * target) — both agents hash every byte, and a lane per core keeps both busy — or 1 when an
 * agent does not report its CPUs (an agent older than lanes, which would refuse a lane). A backup
 * seed is one xbstream pipe: always 1 lane. `note` says why the count differs from the request.
 */
export function chooseLanes(requested: number | undefined, method: SeedMethodName, source: { id: string; facts: Facts }, target: { id: string; facts: Facts }): { lanes: number; note: string | null } {
  if (!SEED_METHODS[method].transfer.resumable) {
    return { lanes: 1, note: requested !== undefined && requested > 1 ? `lanes forced to 1 (a ${method} seed is one stream)` : null };
  }
  const cpus = [source.facts.cpus, target.facts.cpus];
  if (requested !== undefined) {
    if (requested > 1) {
      for (const [role, agent] of [['source', source], ['target', target]] as const) {
        if (agent.facts.cpus === undefined) refuse(`lanes: the ${role} agent ${agent.id} is older than parallel lanes; ask for lanes 1 or upgrade it`, 'SEEDWIRE_BAD_PARAMS');
      }
    }
    return { lanes: requested, note: null };
  }
  if (cpus.some((n) => n === undefined)) return { lanes: 1, note: null };
  return { lanes: Math.max(1, Math.min(SEED_LIMITS.defaultMaxLanes, ...(cpus as number[]))), note: null };
}

export async function runPrechecks(request: SeedRequest, deps: PrecheckDeps): Promise<SeedPlan> {
  const { hub } = deps;
  const ask = async <N extends OpName>(agentId: string, op: N, params: OpParamsInput<N>, timeoutMs: number = SEED_LIMITS.precheckCallMs): Promise<OpResultOf<N>> =>
    (await hub.call(agentId, op, params, { timeoutMs })).result;
  const needFacts = (agentId: string, role: string): Facts => hub.facts(agentId) ?? refuse(`${role} agent ${agentId} has not reported its facts yet`);

  if (request.source === request.target) refuse('source and target are the same agent');
  for (const [role, agentId] of [['source', request.source], ['target', request.target]] as const) {
    if (!(await hub.agent(agentId))) refuse(`${role} agent ${agentId} is unknown`);
    if (!hub.isConnected(agentId)) refuse(`${role} agent ${agentId} is not connected`);
    const active = await deps.activeSeedOf(agentId);
    if (active) refuse(`${role} agent ${agentId} is already in seed ${active}`);
  }
  const sourceFacts = needFacts(request.source, 'source');
  const targetFacts = needFacts(request.target, 'target');
  if (!sourceFacts.mysqlConfigured) refuse(`source ${request.source} has no mysql section in its agent config`);
  if (!targetFacts.mysqlConfigured) refuse(`target ${request.target} has no mysql section in its agent config`);

  const method = chooseMethod(request.method, sourceFacts);
  await SEED_METHODS[method].precheck?.({ source: request.source, sourceFacts, askSource: (op, params) => ask(request.source, op, params), refuse: (message) => refuse(message) });

  const status = await ask(request.target, 'mysql-status', {});
  if (status.running) refuse(`MySQL is running on the target ${request.target}; stop it first`);

  const size = await ask(request.source, 'seed-source-size', { source: { kind: 'datadir' } }, SEED_LIMITS.precheckSizeMs);
  const free = await ask(request.target, 'mysql-datadir-available-space', {});
  const reclaimable = targetFacts.datadirBytes ?? 0;
  const required = requiredBytes(size.bytes);
  if (free.bytes + reclaimable < required) {
    refuse(
      `target ${request.target} has ${formatBytes(free.bytes + reclaimable)} available (free plus its current datadir) but the seed needs ${formatBytes(required)} (${formatBytes(size.bytes)} plus margin)`,
      'SEEDWIRE_NO_SPACE',
    );
  }

  const { compression, remote } = chooseCompression(request.compression ?? 'auto', sourceFacts, targetFacts);
  const { lanes, note } = chooseLanes(request.lanes, method, { id: request.source, facts: sourceFacts }, { id: request.target, facts: targetFacts });
  const summary = `${method} seed of ${formatBytes(size.bytes)} in ${size.files} files; ${remote ? 'remote' : 'local'} datacenter; compression ${compression}; ${lanes} lane${lanes > 1 ? 's' : ''}${note ? ` (${note})` : ''}`;
  return { method, compression, lanes, bytesTotal: size.bytes, summary };
}
