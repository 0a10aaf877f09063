/**
 * The holder's side of routing: presence and serving. While this controller holds an agent's
 * session it subscribes to `seedwire.agent.<id>.*` (one holder, so no queue group), and answers
 * there: `start` runs the operation with this controller's own runner (its store, its audit) and
 * streams the output to the requester's stream subject; `cancel` and `get` act on such an
 * operation. It unsubscribes when the session ends, so "no responders" means no controller holds
 * the agent. When an agent moves, the new holder publishes a claim and an older holder that has not
 * yet noticed the dead link stops answering for it at once.
 */
import type { NatsConnection, Msg, Subscription } from 'nats';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { SeedwireError, toSeedwireError } from '../../shared/errors.js';
import type { OperationRunner } from '../ops/types.js';
import type { Audit } from '../types.js';
import type { BusLink } from './link.js';
import {
  Claim,
  decodeMessage,
  encodeMessage,
  MemberReply,
  MoveRequest,
  OperationRequest,
  StartRequest,
  toWireError,
  type MemberRequest,
  type MoveReply,
  type OperationReply,
  type StreamMessage,
} from './messages.js';
import { SUBJECTS } from './subjects.js';

export interface HolderDeps {
  link: BusLink;
  controllerId: string;
  advertiseUrl: string;
  operations: OperationRunner;
  audit: Audit;
  /** The stored output of an operation of this controller, as text. */
  readOutput(operationId: string): Promise<string>;
  log: Logger;
  /** Interval of `alive` messages on a routed operation's stream while it runs. */
  aliveMs: number;
  /** Largest message published (NATS's max_payload is 1 MiB by default); larger output chunks are split. */
  maxMessageBytes: number;
  /**
   * Sends the held agent a move frame to the controller at `advertiseUrl` (the hub turns it into
   * the agent URL); false when the agent's session is not here (any more).
   */
  moveAgent(agentId: string, advertiseUrl: string, reason: string): boolean;
  /** How long a controller is given to answer on its member subject. */
  memberTimeoutMs: number;
}

export interface Holder {
  hold(agentId: string): void;
  release(agentId: string): void;
  /** Agents this controller answers for now. */
  heldCount(): number;
  close(): void;
}

/** Splits text into pieces of at most `maxBytes` UTF-8 bytes, never inside a character. */
export function splitUtf8(text: string, maxBytes: number): string[] {
  if (Buffer.byteLength(text) <= maxBytes) return [text];
  const pieces: string[] = [];
  let rest = text;
  while (Buffer.byteLength(rest) > maxBytes) {
    // Characters are at most 4 bytes and 2 UTF-16 units: maxBytes/4 units always fit.
    let cut = Math.max(1, Math.floor(maxBytes / 4));
    while (cut < rest.length && Buffer.byteLength(rest.slice(0, cut * 2)) <= maxBytes) cut *= 2;
    while (Buffer.byteLength(rest.slice(0, cut)) > maxBytes) cut--;
    const code = rest.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut--; // do not split a surrogate pair
    pieces.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest !== '') pieces.push(rest);
  return pieces;
}

export function createHolder(deps: HolderDeps): Holder {
  const { link, controllerId, operations, log } = deps;
  const held = new Map<string, Subscription | null>();
  const streams = new Set<() => void>();
  let claimSub: Subscription | null = null;
  let memberSub: Subscription | null = null;
  let closed = false;

  function respond(msg: Msg, reply: unknown): void {
    try {
      msg.respond(encodeMessage(reply));
    } catch (error) {
      log.warn({ err: error, subject: msg.subject }, 'bus reply failed');
    }
  }

  /** Runs a routed operation and streams it: output chunks in order, `alive` while quiet, then `end`. */
  async function serveStart(nc: NatsConnection, agentId: string, msg: Msg, request: StartRequest): Promise<void> {
    let n = 0;
    let lastSent = Date.now();
    const send = (message: StreamMessage): void => {
      lastSent = Date.now();
      try {
        nc.publish(request.stream, encodeMessage(message));
      } catch (error) {
        // Lost here means a numbered gap at the requester, which it reports in the output.
        log.warn({ err: error, agentId }, 'routed output not published');
      }
    };
    let started;
    try {
      started = await operations.start(agentId, request.op, request.params, {
        actor: request.actor,
        requester: request.requester,
        onOutput: (chunk) => {
          for (const data of splitUtf8(chunk.data, deps.maxMessageBytes)) send({ kind: 'output', n: ++n, seq: chunk.seq, stream: chunk.stream, data });
        },
      });
    } catch (error) {
      const failure = toSeedwireError(error);
      await deps.audit.record({ actor: request.actor, agentId, action: `op:${request.op}`, outcome: 'refused', message: `${failure.code}: ${failure.message}`, params: { requester: request.requester } });
      respond(msg, { ok: false, error: toWireError(failure) } satisfies OperationReply);
      return;
    }
    // 'operation started' (the runner's line) names the requester: no line of its own here.
    respond(msg, { ok: true, operation: started.operation } satisfies OperationReply);
    // Ended before the reply with nothing streamed: the reply carried the end.
    if (request.endInReply === true && started.operation.state !== 'running' && n === 0) return;
    const timer = setInterval(() => {
      // Only while the agent is held here: a silent stream makes the requester ask the agent's subject, which reaches its current holder.
      if (held.has(agentId) && Date.now() - lastSent >= deps.aliveMs) send({ kind: 'alive', n: ++n });
    }, Math.max(50, Math.floor(deps.aliveMs / 2)));
    timer.unref();
    const stop = (): void => {
      clearInterval(timer);
      streams.delete(stop);
    };
    streams.add(stop);
    void started.done.then((operation) => {
      // done never rejects (OperationRunner contract)
      stop();
      send({ kind: 'end', n: ++n, operation });
    });
  }

  /**
   * A seed's owner asks for the agent. Only to a live member of the cluster: the controller that
   * advertises the URL must answer on its member subject (the agent checks its own list too).
   */
  async function serveMove(agentId: string, msg: Msg, request: MoveRequest): Promise<void> {
    if (request.url === deps.advertiseUrl) {
      respond(msg, { ok: true, moved: false } satisfies MoveReply);
      return;
    }
    let member: MemberReply;
    try {
      const answer = await link.request(SUBJECTS.member(request.url), encodeMessage({ requester: controllerId } satisfies z.infer<typeof MemberRequest>), deps.memberTimeoutMs);
      member = decodeMessage(MemberReply, answer.data, 'member reply');
    } catch (error) {
      throw new SeedwireError('SEEDWIRE_BAD_REQUEST', `move of agent ${agentId} refused: ${request.url} is not the advertise URL of a live controller of this cluster`, { cause: error });
    }
    if (member.url !== request.url) throw new SeedwireError('SEEDWIRE_BAD_REQUEST', `move of agent ${agentId} refused: ${request.url} answered as ${member.url}`);
    const moved = held.has(agentId) && deps.moveAgent(agentId, request.url, request.reason);
    log.info({ agentId, to: request.url, requester: request.requester, moved, reason: request.reason }, 'agent asked to move to another controller');
    respond(msg, { ok: true, moved } satisfies MoveReply);
  }

  async function serve(agentId: string, msg: Msg): Promise<void> {
    const verb = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
    const nc = link.connection();
    if (nc === null || msg.reply === undefined || msg.reply === '') return;
    try {
      if (verb === 'start') {
        await serveStart(nc, agentId, msg, decodeMessage(StartRequest, msg.data, 'start request'));
        return;
      }
      if (verb === 'move') {
        await serveMove(agentId, msg, decodeMessage(MoveRequest, msg.data, 'move request'));
        return;
      }
      const request = decodeMessage(OperationRequest, msg.data, `${verb} request`);
      const row = await operations.get(request.operationId);
      if (row === null || row.agentId !== agentId) {
        respond(msg, { ok: true, operation: null } satisfies OperationReply);
        return;
      }
      if (verb === 'get') {
        respond(msg, { ok: true, operation: row } satisfies OperationReply);
      } else if (verb === 'cancel') {
        if (row.state === 'running') {
          await deps.audit.record({ actor: 'admin', agentId, action: 'cancel', params: { operationId: row.id, requester: request.requester }, outcome: 'requested' });
          await operations.cancel(row.id, request.reason ?? 'canceled by admin');
        }
        respond(msg, { ok: true, operation: await operations.get(row.id) } satisfies OperationReply);
      } else {
        throw new SeedwireError('SEEDWIRE_BAD_REQUEST', `unknown verb ${verb}`);
      }
    } catch (error) {
      const failure = toSeedwireError(error);
      log.warn({ agentId, verb, code: failure.code, err: failure }, 'routed request refused');
      respond(msg, { ok: false, error: toWireError(failure) } satisfies OperationReply);
    }
  }

  function subscribeAgent(nc: NatsConnection, agentId: string): void {
    const sub = nc.subscribe(SUBJECTS.agentAll(agentId), { callback: (error, msg) => (error ? log.warn({ err: error, agentId }, 'presence subscription error') : void serve(agentId, msg)) });
    held.set(agentId, sub);
    nc.publish(SUBJECTS.claims, encodeMessage({ origin: controllerId, agentId, url: deps.advertiseUrl } satisfies Claim));
  }

  function onClaim(msg: Msg): void {
    let claim: Claim;
    try {
      claim = decodeMessage(Claim, msg.data, 'claim');
    } catch (error) {
      log.warn({ err: error }, 'bad presence claim dropped');
      return;
    }
    if (claim.origin === controllerId || !held.has(claim.agentId)) return;
    // The agent has one link; a newer session elsewhere means ours is dead and not yet noticed.
    log.info({ agentId: claim.agentId, holder: claim.origin, holderUrl: claim.url }, 'agent claimed by another controller; no longer answering for it');
    held.get(claim.agentId)?.unsubscribe();
    held.delete(claim.agentId);
  }

  /** Answers "is this URL a live controller?" for our own advertise URL. */
  function onMemberRequest(msg: Msg): void {
    if (msg.reply === undefined || msg.reply === '') return;
    respond(msg, { controllerId, url: deps.advertiseUrl } satisfies MemberReply);
  }

  /** First connect: subscribe what was held meanwhile. After a reconnect the client restores subscriptions itself. */
  link.onConnected(() => {
    const nc = link.connection();
    if (nc === null || closed) return;
    claimSub ??= nc.subscribe(SUBJECTS.claims, { callback: (error, msg) => (error ? log.warn({ err: error }, 'claim subscription error') : onClaim(msg)) });
    memberSub ??= nc.subscribe(SUBJECTS.member(deps.advertiseUrl), { callback: (error, msg) => (error ? log.warn({ err: error }, 'member subscription error') : onMemberRequest(msg)) });
    for (const [agentId, sub] of held) if (sub === null) subscribeAgent(nc, agentId);
  });

  return {
    hold(agentId) {
      if (closed) return;
      held.get(agentId)?.unsubscribe();
      const nc = link.connection();
      if (nc === null || nc.isClosed()) {
        held.set(agentId, null);
        return;
      }
      subscribeAgent(nc, agentId);
    },
    release(agentId) {
      held.get(agentId)?.unsubscribe();
      held.delete(agentId);
    },
    heldCount: () => held.size,
    close() {
      closed = true;
      for (const sub of held.values()) sub?.unsubscribe();
      held.clear();
      claimSub?.unsubscribe();
      memberSub?.unsubscribe();
      for (const stop of [...streams]) stop();
    },
  };
}
