/**
 * Opens one dial-out WebSocket (the control link or a data connection) with the options every agent socket needs: the token in the
 * Authorization header (never in the URL), no permessage-deflate, a small maxPayload, the
 * configured CA, and TCP keepalive as a backstop to the heartbeats.
 */
import { readFileSync } from 'node:fs';
import type { Agent } from 'node:http';
import type { Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import WebSocket from 'ws';
import { LIMITS } from '../../shared/limits.js';
import { SeedwireError } from '../../shared/errors.js';

export interface SocketOptions {
  url: string;
  /** The bearer token; null sends no Authorization header (a client certificate alone). */
  token: string | null;
  tls?: { ca?: string | undefined; insecureSkipVerify: boolean } | undefined;
  handshakeTimeoutMs: number;
  keepAliveMs: number;
  /** An HTTP CONNECT agent when the dial goes through a proxy (proxy.ts). */
  agent?: Agent | undefined;
  /** More handshake headers (a data connection's claim: agent, stream, role). */
  headers?: Record<string, string> | undefined;
  /**
   * Send every frame with an all-zero mask, so ws skips masking (and the copy it takes): for data
   * connections, whose bulk bytes would otherwise cost a third of the sender's CPU. RFC 6455
   * masking protects intermediary caches from a hostile browser script; this client is no browser
   * (docs/security.md).
   */
  zeroMask?: boolean | undefined;
  /** Opens the TCP (or TLS) socket instead of ws (a data reader's socket, agent/streams/data-reader.ts); not with `agent`. */
  createConnection?: ((options: Record<string, unknown>) => Socket) | undefined;
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** A client certificate and its key (mutual TLS), read at start-up. */
export interface ClientCertificate {
  cert: Buffer;
  key: Buffer;
}

/** Reads a TLS file once, at start-up, so a missing file is a config error and not a redial loop. */
function readTlsFile(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error at ${key}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

export function readCa(path: string | undefined): Buffer | undefined {
  return path === undefined ? undefined : readTlsFile('tls.ca', path);
}

export function readClientCertificate(tls: { cert?: string | undefined; key?: string | undefined } | undefined): ClientCertificate | undefined {
  if (tls?.cert === undefined || tls.key === undefined) return undefined;
  return { cert: readTlsFile('tls.cert', tls.cert), key: readTlsFile('tls.key', tls.key) };
}

/**
 * Through a CONNECT tunnel, https-proxy-agent starts TLS without the target's host, so Node would
 * check the certificate against "localhost" for an IP address: check it against the URL's host.
 */
function tunnelIdentityCheck(url: string): { checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined } {
  const target = new URL(url);
  if (target.protocol !== 'wss:') return {};
  const host = target.hostname.replace(/^\[|\]$/g, '');
  return { checkServerIdentity: (_host, cert) => checkServerIdentity(host, cert) };
}

export function openSocket(options: SocketOptions, ca: Buffer | undefined, clientCertificate?: ClientCertificate): WebSocket {
  const ws = new WebSocket(options.url, {
    headers: { ...options.headers, ...(options.token === null ? {} : { Authorization: `Bearer ${options.token}` }) },
    ...(options.zeroMask ? { generateMask: zeroMask } : {}),
    // ws passes `createConnection` on to http.request (its ClientOptions type does not list it).
    ...((options.createConnection && !options.agent ? { createConnection: options.createConnection } : {}) as object),
    perMessageDeflate: false,
    maxPayload: LIMITS.maxMessageBytes,
    handshakeTimeout: options.handshakeTimeoutMs,
    followRedirects: false,
    ...(options.agent ? { agent: options.agent, ...tunnelIdentityCheck(options.url) } : {}),
    ...(ca ? { ca } : {}),
    ...(clientCertificate ? { cert: clientCertificate.cert, key: clientCertificate.key } : {}),
    rejectUnauthorized: !(options.tls?.insecureSkipVerify ?? false),
  });
  ws.once('upgrade', (res) => {
    res.socket.setKeepAlive(true, options.keepAliveMs);
    res.socket.setNoDelay(true);
  });
  return ws;
}
