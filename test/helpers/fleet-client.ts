/**
 * Load clients: many protocol clients per process, each driven by the agent's own reconnect loop
 * (agent/connection/link.ts: backoff, Retry-After, heartbeats), speaking the real frames and
 * answering `hostname` calls. `startFleet` spawns child processes running `fleet-child.ts`; each
 * child reports welcomes and calls to the parent over IPC. This is the one module to adapt when
 * the agent's credentials change (enrollment).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { AgentIdentity } from '../../agent/connection/identity.js';
import { Link } from '../../agent/connection/link.js';
import type { Timing } from '../../agent/connection/timing.js';
import type { Frame, ResultFrame } from '../../shared/frames.js';
import { LIMITS } from '../../shared/limits.js';
import { PROJECT_ROOT } from './agent.js';

/** One call a simulated agent was sent (`duplicate`: its id came before, it was not run again). */
export interface FleetCall {
  agentId: string;
  callId: string;
  op: string;
  duplicate: boolean;
}

/** What a child tells its parent. */
export type FleetMessage =
  /** `at`: when the client read its welcome; `sentAt`: the welcome's own clock, when the controller sent it (same host, same clock). */
  | { type: 'welcome'; agentId: string; at: number; sentAt: number }
  /** The calls answered since the last report (sent every CALL_REPORT_MS, after the answers: off the timed path). */
  | { type: 'calls'; calls: FleetCall[] }
  | { type: 'started'; count: number }
  /** With FLEET_TRACE=1: the clients' log messages counted since the last report (what they do after a refusal). */
  | { type: 'trace'; counts: Record<string, number> };

export interface FleetClientOptions {
  /** One controller URL, or several: each client's list then starts at its own (see `firstIndex`). */
  url: string | string[];
  /** With several URLs: the fleet-wide index of this process's first client; client k's list starts at URL k mod n and goes round. */
  firstIndex?: number;
  token: string;
  agentIds: string[];
  /** Where each client keeps its state (a directory per agent id); startFleet's parent owns and removes it. */
  stateDir: string;
  report(message: FleetMessage): void;
  /** Counts the clients' log messages and reports them every few seconds (diagnostics; costs a parse per line). */
  trace?: boolean;
}

/** A pino destination that counts messages (with a redial's delay rounded to 10 s) instead of writing them. */
function countingLog(report: (counts: Record<string, number>) => void): { log: pino.Logger; stop(): void } {
  let counts: Record<string, number> = {};
  const destination = {
    write(line: string): void {
      const record = JSON.parse(line) as { msg?: string; delayMs?: number; code?: string; status?: number };
      const key = `${record.msg ?? '?'}${record.delayMs === undefined ? '' : ` (${Math.round(record.delayMs / 10_000) * 10} s)`}${record.status === undefined ? '' : ` ${record.status}`}${record.code === undefined ? '' : ` ${record.code}`}`;
      counts[key] = (counts[key] ?? 0) + 1;
    },
  };
  const timer = setInterval(() => {
    if (Object.keys(counts).length === 0) return;
    report(counts);
    counts = {};
  }, 5_000);
  timer.unref();
  return { log: pino({ level: 'info' }, destination), stop: () => clearInterval(timer) };
}

const TIMING: Timing = {
  heartbeatMs: undefined,
  deadAfterMs: undefined,
  handshakeTimeoutMs: LIMITS.handshakeTimeoutMs,
  reconnectBaseMs: LIMITS.reconnectBaseMs,
  reconnectCapMs: LIMITS.reconnectCapMs,
  reconnectHealthyMs: LIMITS.reconnectHealthyMs,
  startupJitterMs: LIMITS.startupJitterMs,
  killGraceMs: LIMITS.killGraceMs,
};

/**
 * Calls are reported to the parent in batches this often: a report per call would put an IPC write
 * before each answer and wake the parent (the bench, timing that very call) once per call.
 */
const CALL_REPORT_MS = 100;

/** Runs the clients in this process (a child of startFleet); resolves with a stop function. */
export function runFleetClients(options: FleetClientOptions): () => Promise<void> {
  const traced = options.trace ? countingLog((counts) => options.report({ type: 'trace', counts })) : null;
  const log = traced?.log ?? pino({ level: 'silent' });
  const stateBase = options.stateDir;
  let answered: FleetCall[] = [];
  const reportCalls = (): void => {
    if (answered.length === 0) return;
    options.report({ type: 'calls', calls: answered });
    answered = [];
  };
  const callReports = setInterval(reportCalls, CALL_REPORT_MS);
  callReports.unref();
  const urls = typeof options.url === 'string' ? [options.url] : options.url;
  // Spread over the controllers, each client failing over down the rest of the list (an agent's `controller` list).
  const listOf = (k: number): string[] => urls.map((_, i) => urls[(k + i) % urls.length]!);
  const links = options.agentIds.map((agentId, i) => {
    const stateDir = join(stateBase, agentId);
    mkdirSync(stateDir);
    const bootId = randomUUID();
    const seen = new Set<string>();
    // Results not yet acknowledged are re-sent on the next session, as the agent's ledger does.
    const unacked = new Map<string, ResultFrame>();
    return new Link({
      controllers: listOf((options.firstIndex ?? 0) + i),
      socket: {},
      ca: undefined,
      identity: new AgentIdentity({ stateDir, agentId, enrollmentToken: options.token, log }),
      timing: TIMING,
      log,
      handlers: {
        makeHello: () => ({
          t: 'hello',
          v: LIMITS.protocolVersion,
          agentId,
          hostname: agentId,
          version: '0.0.0-load',
          capabilities: ['hostname'],
          datacenter: 'load',
          bootId,
          clock: Date.now(),
          pending: [...unacked.keys()],
          running: [],
        }),
        onSession(session, welcome) {
          options.report({ type: 'welcome', agentId, at: Date.now(), sentAt: welcome.clock });
          for (const result of unacked.values()) session.send(result);
        },
        onFrame(frame: Frame, session) {
          if (frame.t === 'ack') {
            for (const id of frame.ids) unacked.delete(id);
            return;
          }
          if (frame.t !== 'call') return;
          const duplicate = seen.has(frame.id);
          seen.add(frame.id);
          if (!duplicate) {
            const result: ResultFrame =
              frame.op === 'hostname'
                ? { t: 'result', id: frame.id, result: { hostname: agentId }, exitCode: null, durationMs: 0 }
                : { t: 'result', id: frame.id, result: null, exitCode: null, durationMs: 0 };
            unacked.set(frame.id, result);
            session.send(result);
          }
          answered.push({ agentId, callId: frame.id, op: frame.op, duplicate });
        },
        onBinary: () => undefined,
        onSessionEnd: () => undefined,
      },
    });
  });
  for (const link of links) link.start();
  options.report({ type: 'started', count: links.length });
  return async () => {
    traced?.stop();
    clearInterval(callReports);
    reportCalls();
    await Promise.all(links.map((link) => link.stop()));
  };
}

export interface Fleet {
  readonly messages: FleetMessage[];
  /** Every welcome, by agent id (the latest last): when the client read it. */
  welcomes: Map<string, number[]>;
  /** The same welcomes by when their controller sent them (the welcome's clock). */
  welcomesSent: Map<string, number[]>;
  calls: FleetCall[];
  /** With trace: the clients' log messages counted, summed over the children since the last take. */
  takeTrace(): Record<string, number>;
  /** The children's process ids (the bench reads their CPU time: the simulator must stay cheap). */
  readonly pids: number[];
  /** Kills every child (idempotent). */
  stop(): Promise<void>;
}

/**
 * Spawns `processes` children, each running its share of `count` clients named `${prefix}-${n}`.
 * Several URLs spread the clients: client n's controller list starts at URL n mod count and goes round.
 */
export function startFleet(options: { url: string | string[]; token: string; count: number; processes: number; prefix: string; trace?: boolean }): Fleet {
  let trace: Record<string, number> = {};
  const children: ChildProcess[] = [];
  const messages: FleetMessage[] = [];
  const welcomes = new Map<string, number[]>();
  const welcomesSent = new Map<string, number[]>();
  const calls: FleetCall[] = [];
  const ids = Array.from({ length: options.count }, (_, i) => `${options.prefix}-${String(i).padStart(4, '0')}`);
  const share = Math.ceil(options.count / options.processes);
  // Each client enrolls with the shared token and keeps its credential, as a real agent does:
  // written and fsynced twice. Real agents each have their own disk; thousands of clients here
  // share one, so their state lives in memory (/dev/shm) where there is one, or an enrollment
  // herd measures this machine's disk instead of the controller. Removed by stop().
  const stateDir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'sw-fleet-'));
  for (let p = 0; p < options.processes; p++) {
    const mine = ids.slice(p * share, (p + 1) * share);
    if (mine.length === 0) continue;
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/fleet-child.ts'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, FLEET_URL: typeof options.url === 'string' ? options.url : options.url.join(','), FLEET_FIRST_INDEX: String(p * share), FLEET_TOKEN: options.token, FLEET_IDS: mine.join(','), FLEET_STATE_DIR: stateDir, FLEET_TRACE: options.trace ? '1' : '' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.on('message', (raw) => {
      const message = raw as FleetMessage;
      messages.push(message);
      if (message.type === 'welcome') {
        welcomes.set(message.agentId, [...(welcomes.get(message.agentId) ?? []), message.at]);
        welcomesSent.set(message.agentId, [...(welcomesSent.get(message.agentId) ?? []), message.sentAt]);
      }
      else if (message.type === 'calls') calls.push(...message.calls);
      else if (message.type === 'trace') for (const [k, n] of Object.entries(message.counts)) trace[k] = (trace[k] ?? 0) + n;
    });
    children.push(child);
  }
  return {
    pids: children.flatMap((child) => (child.pid === undefined ? [] : [child.pid])),
    messages,
    welcomes,
    welcomesSent,
    calls,
    takeTrace() {
      const taken = trace;
      trace = {};
      return taken;
    },
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGKILL');
            }),
        ),
      );
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
