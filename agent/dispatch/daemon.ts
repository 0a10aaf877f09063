/**
 * Wires one agent together: the link (connection/), the dispatcher, the stream port and the
 * facts publisher. `stop()` drains: no new calls, running ones get `drainMs`, then the link closes.
 */
import type { Logger } from 'pino';
import { LIMITS } from '../../shared/limits.js';
import { VERSION } from '../../shared/version.js';
import { OUTPUT_ACKS_CAPABILITY, type Frame, type HelloFrame } from '../../shared/frames.js';
import type { AgentConfig } from '../config/schema.js';
import { DATA_CONNECTIONS_CAPABILITY } from '../../shared/data-link.js';
import { createDataDialer } from '../connection/data-dial.js';
import { AgentIdentity } from '../connection/identity.js';
import { Link, makeBootId } from '../connection/link.js';
import type { Session } from '../connection/session.js';
import { describeProxySettings, resolveProxySettings } from '../connection/proxy.js';
import { readCa, readClientCertificate } from '../connection/socket.js';
import { resolveTiming } from '../connection/timing.js';
import { commandEnv } from '../exec/env.js';
import { Spawner } from '../exec/spawner/spawner.js';
import { collectFacts } from '../facts.js';
import type { CollectFacts, OpDefinition } from '../ops/types.js';
import { startStatusReporter } from '../status/reporter.js';
import { ConnectionStreamPort } from '../streams/port.js';
import { Dispatcher } from './dispatcher.js';
import { FactsPublisher } from './facts.js';
import { Ledger } from './ledger.js';
import { blake3Available } from '../transfer/content-hash.js';
import { CONTENT_HASH_BLAKE3_CAPABILITY } from '../../shared/ops.js';

export interface DaemonOptions {
  config: AgentConfig;
  log: Logger;
  registry: ReadonlyMap<string, OpDefinition>;
  collectFacts?: CollectFacts;
  drainMs?: number;
}

export interface Daemon {
  readonly bootId: string;
  /** Resolves once the local status endpoint (if configured) listens; rejects naming status.listen. */
  readonly ready: Promise<void>;
  /** Re-collects facts and pushes them if they changed (after a config reload). */
  refreshFacts(): void;
  /** Graceful stop; idempotent. */
  stop(): Promise<void>;
}

export function startDaemon(options: DaemonOptions): Daemon {
  const { config, registry } = options;
  const log = options.log.child({ agentId: config.id });
  const timing = resolveTiming(config);
  const bootId = makeBootId();
  const ledger = Ledger.open(config.stateDir, { onCorrupt: (error) => log.warn({ err: error }, 'ledger unreadable; starting a new one') });
  const ca = readCa(config.tls?.ca);
  const clientCertificate = readClientCertificate(config.tls);
  const proxy = resolveProxySettings(config.proxy, config.proxyEnv ?? {}, log);
  const identity = new AgentIdentity({ stateDir: config.stateDir, agentId: config.id, enrollmentToken: config.token, log });

  // Assigned once below; the closures before it need the binding first (the link calls them).
  // eslint-disable-next-line prefer-const
  let link: Link | undefined;
  const send = (frame: Frame): boolean => link?.session?.send(frame) ?? false;
  const dialData = createDataDialer({
    controllerUrl: () => link?.controller,
    agentId: config.id,
    tls: config.tls,
    ca,
    clientCertificate,
    proxy,
    handshakeTimeoutMs: timing.handshakeTimeoutMs,
    keepAliveMs: timing.heartbeatMs ?? LIMITS.heartbeatMs,
    log,
  });
  const dataConnections = config.advanced.dataConnections ?? true;
  const streams = new ConnectionStreamPort(() => link?.session, log, undefined, dataConnections ? dialData : undefined);
  const collect: CollectFacts = options.collectFacts ?? ((signal) => collectFacts(config, signal));
  const facts = new FactsPublisher({ collect, send, log });
  // Commands fork from a small helper process, not from this large one (docs/architecture.md);
  // it starts with the first command.
  const spawner = config.advanced.spawner === false ? undefined : new Spawner({ log: log.child({ component: 'spawner' }), env: commandEnv(process.env) });
  const dispatcher = new Dispatcher({
    registry,
    config,
    log,
    ledger,
    streams,
    send,
    refreshFacts: () => facts.refresh(),
    killGraceMs: timing.killGraceMs,
    spawner,
    sessionId: () => link?.session?.id,
  });

  const makeHello = (): HelloFrame => ({
    t: 'hello',
    v: LIMITS.protocolVersion,
    agentId: config.id,
    hostname: config.hostname,
    version: VERSION,
    capabilities: [...registry.keys(), OUTPUT_ACKS_CAPABILITY, ...(dataConnections ? [DATA_CONNECTIONS_CAPABILITY] : []), ...(blake3Available() ? [CONTENT_HASH_BLAKE3_CAPABILITY] : [])],
    datacenter: config.datacenter,
    bootId,
    clock: Date.now(),
    pending: dispatcher.pendingIds(),
    running: dispatcher.runningIds(),
  });

  link = new Link({
    controllers: config.controller,
    socket: { tls: config.tls },
    identity,
    ca,
    clientCertificate,
    proxy,
    timing,
    log,
    handlers: {
      makeHello,
      onSession: (_session: Session, welcome) => {
        facts.publishNow();
        dispatcher.deliverPending(welcome.acksOutput === true);
      },
      onFrame: (frame, session) => {
        if (frame.t === 'credit') streams.handleCredit(frame);
        else if (frame.t === 'move') {
          const refusal = link?.moveTo(frame.url, frame.reason) ?? null;
          if (refusal !== null) session.send({ t: 'error', id: null, code: 'SEEDWIRE_OP_REFUSED', message: refusal });
        } else dispatcher.handleFrame(frame);
      },
      onBinary: (data) => streams.handleBinary(data),
      onSessionEnd: () => streams.dispose(),
    },
  });
  log.info({ controller: config.controller.length === 1 ? config.controller[0] : config.controller, stateDir: config.stateDir, bootId, ops: registry.size, enrolled: identity.enrolled, clientCertificate: clientCertificate !== undefined, proxy: describeProxySettings(proxy, config.controller[0]!) }, 'agent starting');
  link.start();
  facts.start();
  const status = startStatusReporter({
    sources: {
      identity: {
        agentId: config.id,
        hostname: config.hostname,
        datacenter: config.datacenter,
        version: VERSION,
        pid: process.pid,
        bootId,
        startedAt: new Date().toISOString(),
        intervalSeconds: config.status.intervalSeconds,
        controllers: config.controller,
      },
      link: () => link.status.view(),
      calls: () => dispatcher.runningCalls(),
    },
    stateDir: config.stateDir,
    intervalMs: config.status.intervalSeconds * 1000,
    listen: config.status.listen,
    log,
  });

  let stopping: Promise<void> | undefined;
  return {
    bootId,
    ready: status.ready,
    refreshFacts: () => facts.refresh(),
    stop(): Promise<void> {
      stopping ??= (async () => {
        log.info({ running: dispatcher.runningIds().length }, 'draining');
        status.draining();
        await dispatcher.drain(options.drainMs ?? LIMITS.drainMs);
        await spawner?.stop();
        facts.dispose();
        await link?.stop();
        await status.stop();
        ledger.close();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}
