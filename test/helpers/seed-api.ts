/**
 * Driving seeds through the controller's HTTP API, as the seed system tests do: JSON calls,
 * operations, waiting for agents and seeds, and what a seed left behind on an agent.
 */
import { execFileSync } from 'node:child_process';
import { expect, vi } from 'vitest';
import { ApiClient } from '../../client/api.js';
import type { AgentProcess } from './agent.js';
import type { RunningController } from './controller.js';
import type { MariaDB } from './mariadb.js';

export interface SeedJson {
  id: string;
  state: string;
  stage: string | null;
  method: string;
  bytesDone: number;
  bytesTotal: number | null;
  bytesPerSec: number | null;
  etaSeconds: number | null;
  attempts: number;
  /** Transfer lanes the seed uses. */
  lanes: number;
  error: { code: string; message: string } | null;
  result: { files: number; bytes: number; digest: string; binlog?: { file: string; position: number; gtid?: string } } | null;
  stages: Array<{ name: string; state: string; startedAt: string | null; endedAt: string | null; message: string | null }>;
}

export interface OperationJson<T> {
  state: string;
  result: T;
  error: { code: string; message: string } | null;
}

/** API calls against whichever controller `current()` returns (it changes across restarts), through the project's API client. */
export function seedApi(current: () => RunningController) {
  const client = (): ApiClient => new ApiClient({ baseUrl: current().url, token: current().adminToken });
  /** Any call with its status, for tests that check refusals themselves. */
  async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const answer = await client().raw(method, path, body);
    return { status: answer.status, body: answer.body as T };
  }
  async function op<T>(agent: string, name: string, params: Record<string, unknown> = {}): Promise<OperationJson<T>> {
    const operation = await client().runOp(agent, name, params, { wait: 120 });
    return { ...operation, result: operation.result as T };
  }
  async function agentsReady(ids: string[]): Promise<void> {
    await vi.waitFor(
      async () => {
        for (const id of ids) {
          const a = await client().agent(id);
          expect(a.connected).toBe(true);
          expect(a.facts).toBeTruthy();
        }
      },
      // Agents start under tsx: on a loaded machine that alone can take half a minute.
      { timeout: 60_000, interval: 100 },
    );
  }
  async function seedUntilDone(id: string, onPoll?: (s: SeedJson) => Promise<void> | void): Promise<SeedJson> {
    let seed!: SeedJson;
    await vi.waitFor(
      async () => {
        // SeedJson is the API's seed with its result spelled out for the tests' assertions.
        seed = (await client().seed(id)) as unknown as SeedJson;
        await onPoll?.(seed);
        expect(['pending', 'running']).not.toContain(seed.state);
      },
      { timeout: 240_000, interval: 100 },
    );
    return seed;
  }
  return { api, op, agentsReady, seedUntilDone };
}

/** The agent config's mysql section for a MariaDB fixture. */
export function mysqlSectionOf(db: MariaDB): Record<string, unknown> {
  return {
    datadir: db.datadir,
    port: db.port,
    errorLog: db.errorLog,
    startCommand: db.startCommand,
    stopCommand: db.stopCommand,
    statusCommand: db.statusCommand,
    commandTimeoutSeconds: 120,
  };
}

/** Where each `seed-send` of this seed (of one lane, when given) started and stopped, from the source agent's log. */
export function sendsOf(agent: AgentProcess, seedId: string, lane?: number): Array<{ from: number; to: number }> {
  const sends = agent.logs.items.filter((l) => l.msg === 'seed-send ended' && (l as Record<string, unknown>)['seedId'] === seedId) as unknown as Array<{ from: number; to: number; lane?: number }>;
  return lane === undefined ? sends : sends.filter((s) => (s.lane ?? 0) === lane);
}

/**
 * The sends of each lane that was resumed (two sends or more), in order: a seed over several
 * lanes resumes each lane from its own committed offset.
 */
export function resumedLanes(agent: AgentProcess, seedId: string, lanes: number): Array<Array<{ from: number; to: number }>> {
  return Array.from({ length: lanes }, (_, lane) => sendsOf(agent, seedId, lane)).filter((sends) => sends.length >= 2);
}

/**
 * Waits until the agent has no command process left: tsx's esbuild service is the test runner's,
 * and the agent's command spawner (agent/exec/spawner/) stays with its idle waiting bash processes
 * (a wrapper bash with no child of its own); anything else below the agent is a leftover.
 */
export async function expectNoChildProcesses(agent: AgentProcess): Promise<void> {
  const childrenOf = (pid: number | string): Array<{ pid: string; args: string }> =>
    execFileSync('bash', ['-c', `ps -o pid=,args= --ppid ${pid} || true`], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => {
        const [, id = '', args = ''] = /^\s*(\d+)\s+(.*)$/.exec(line) ?? [];
        return { pid: id, args };
      });
  await vi.waitFor(
    () => {
      const left: string[] = [];
      for (const child of childrenOf(agent.child.pid!)) {
        if (child.args.includes('esbuild')) continue;
        if (!child.args.includes('seedwire-spawner')) {
          left.push(`${child.pid} ${child.args}`);
          continue;
        }
        for (const waiting of childrenOf(child.pid)) {
          const idle = waiting.args.includes('__seedwire_command') && childrenOf(waiting.pid).length === 0;
          if (!idle) left.push(`${waiting.pid} ${waiting.args} (under the spawner)`);
        }
      }
      expect(left).toEqual([]);
    },
    { timeout: 15_000, interval: 50 },
  );
}
