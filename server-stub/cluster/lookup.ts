/**
 * Operations by id across the cluster: a controller asked about an operation its own store does
 * not have asks every controller at once (`seedwire.ops.lookup` / `seedwire.ops.cancel`); only the
 * one that has it answers, so the first answer is the answer and silence until the deadline means
 * no controller has it.
 */
import { createInbox, type Msg, type Subscription } from 'nats';
import type { Logger } from 'pino';
import { toSeedwireError } from '../../shared/errors.js';
import type { SeedwireEventBus } from '../events/bus.js';
import type { Operation, OperationRunner } from '../ops/types.js';
import type { Audit } from '../types.js';
import type { BusLink } from './link.js';
import type { OutputListener, RemoteOutput } from './routed.js';
import { decodeMessage, encodeMessage, LookupReply, OperationRequest } from './messages.js';
import { SUBJECTS } from './subjects.js';

export interface LookupDeps {
  link: BusLink;
  controllerId: string;
  operations: OperationRunner;
  audit: Audit;
  readOutput(operationId: string): Promise<string>;
  /** Whether this controller holds the agent's session now (with a shared store every controller has the row; only the holder may cancel). */
  holds(agentId: string): boolean;
  /** This controller's own events (which output its answers cover). */
  local: SeedwireEventBus;
  /** Every controller's events (a follower of another controller's operation reads them). */
  fleet: SeedwireEventBus;
  log: Logger;
  /** How long silence means "nobody has it". */
  timeoutMs: number;
  maxMessageBytes: number;
}

export interface ClusterLookup {
  /** The row (and with `output`, its stored output) from whichever controller has it; null when none answers in time. */
  find(operationId: string, output: boolean): Promise<LookupReply | null>;
  /**
   * Another controller's operation with its stored output, followed live from the fleet's events
   * (chunks the stored text already covers skipped); null when no controller has it.
   */
  openOutput(operationId: string): Promise<RemoteOutput | null>;
  /** Cancels it on whichever controller runs it; null when none answers. */
  cancel(operationId: string, reason: string): Promise<Operation | null>;
  close(): void;
}

export function createLookup(deps: LookupDeps): ClusterLookup {
  const { link, controllerId, operations, log } = deps;
  const subs: Subscription[] = [];
  // The last output seq of each running operation of this controller: what a stored text covers.
  const lastOutputSeq = new Map<string, number>();
  const untrack = deps.local.subscribe((event) => {
    const data = event.data as { operationId?: unknown; seq?: unknown; id?: unknown; state?: unknown };
    if (event.type === 'output' && typeof data.operationId === 'string' && typeof data.seq === 'number') lastOutputSeq.set(data.operationId, data.seq);
    else if (event.type === 'operation' && typeof data.id === 'string' && data.state !== 'running') lastOutputSeq.delete(data.id);
  });

  async function answer(msg: Msg, verb: 'lookup' | 'cancel'): Promise<void> {
    if (!msg.reply) return;
    try {
      const request = decodeMessage(OperationRequest, msg.data, `${verb} request`);
      if (request.requester === controllerId) return;
      const row = await operations.get(request.operationId);
      if (row === null) return;
      if (verb === 'cancel' && row.state === 'running' && !deps.holds(row.agentId)) return;
      if (verb === 'cancel' && row.state === 'running') {
        await deps.audit.record({ actor: 'admin', agentId: row.agentId, action: 'cancel', params: { operationId: row.id, requester: request.requester }, outcome: 'requested' });
        await operations.cancel(row.id, request.reason ?? 'canceled by admin');
      }
      const current = (await operations.get(row.id)) ?? row;
      // The seq is taken before the stored text is read: output that lands during the read is in
      // the text and may reach the reader once more from the fleet's events; none is lost.
      const outputSeq = lastOutputSeq.get(row.id) ?? null;
      let output = request.output ? await deps.readOutput(row.id) : undefined;
      // The stored output may be larger than one bus message: its tail is what a reader wants most.
      if (output !== undefined && Buffer.byteLength(output) > deps.maxMessageBytes) output = `[seedwire: output cut to its last part; the full text is on the controller holding ${row.agentId}]\n${Buffer.from(output).subarray(-deps.maxMessageBytes).toString('utf8')}`;
      msg.respond(encodeMessage(output === undefined ? { operation: current } : { operation: current, output, outputSeq }));
    } catch (error) {
      log.warn({ err: toSeedwireError(error) }, `cluster ${verb} request not answered`);
    }
  }

  link.onConnected(() => {
    const nc = link.connection();
    if (nc === null || subs.length > 0) return;
    subs.push(nc.subscribe(SUBJECTS.opLookup, { callback: (error, msg) => (error ? undefined : void answer(msg, 'lookup')) }));
    subs.push(nc.subscribe(SUBJECTS.opCancel, { callback: (error, msg) => (error ? undefined : void answer(msg, 'cancel')) }));
  });

  async function askAll(subject: string, request: OperationRequest): Promise<LookupReply | null> {
    const nc = link.require();
    const inbox = createInbox();
    return new Promise<LookupReply | null>((resolve) => {
      const timer = setTimeout(() => {
        sub.unsubscribe();
        resolve(null);
      }, deps.timeoutMs);
      const sub = nc.subscribe(inbox, {
        callback: (error, msg) => {
          if (error) return;
          try {
            const reply = decodeMessage(LookupReply, msg.data, 'lookup reply');
            clearTimeout(timer);
            sub.unsubscribe();
            resolve(reply);
          } catch (failure) {
            log.warn({ err: failure }, 'bad lookup reply dropped');
          }
        },
      });
      nc.publish(subject, encodeMessage(request), { reply: inbox });
    });
  }

  return {
    find: (operationId, output) => askAll(SUBJECTS.opLookup, { requester: controllerId, operationId, output }),
    async openOutput(operationId) {
      let listener: OutputListener | null = null;
      let covered = -1;
      const early: Array<{ seq: number; data: string }> = [];
      let endedEarly = false;
      // Subscribed before asking: chunks published while the answer travels are kept, and those it covers skipped.
      const unsubscribe = deps.fleet.subscribe((event) => {
        const data = event.data as { operationId?: unknown; seq?: unknown; data?: unknown; id?: unknown; state?: unknown };
        if (event.type === 'output' && data.operationId === operationId && typeof data.seq === 'number' && typeof data.data === 'string') {
          if (listener === null) early.push({ seq: data.seq, data: data.data });
          else if (data.seq > covered) listener.onData(data.data);
        } else if (event.type === 'operation' && data.id === operationId && data.state !== 'running') {
          if (listener === null) endedEarly = true;
          else listener.onEnd();
        }
      });
      let found: LookupReply | null;
      try {
        found = await askAll(SUBJECTS.opLookup, { requester: controllerId, operationId, output: true });
      } catch (error) {
        unsubscribe();
        throw error;
      }
      if (found === null) {
        unsubscribe();
        return null;
      }
      covered = found.outputSeq ?? -1;
      const running = found.operation.state === 'running' && !endedEarly;
      if (!running) unsubscribe();
      return {
        text: found.output ?? '',
        running,
        follow(next) {
          listener = next;
          for (const chunk of early.splice(0)) if (chunk.seq > covered) next.onData(chunk.data);
          if (endedEarly) next.onEnd();
          return unsubscribe;
        },
        close: unsubscribe,
      };
    },
    async cancel(operationId, reason) {
      return (await askAll(SUBJECTS.opCancel, { requester: controllerId, operationId, reason }))?.operation ?? null;
    },
    close() {
      untrack();
      for (const sub of subs.splice(0)) sub.unsubscribe();
    },
  };
}
