/**
 * Opens one dial-out WebSocket with the options every agent socket needs: the token in the
 * Authorization header (never in the URL), no permessage-deflate, a small maxPayload, the
 * configured CA, and TCP keepalive as a backstop to the heartbeats.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { LIMITS } from '../../shared/limits.js';
import { SeedwireError } from '../../shared/errors.js';

export interface SocketOptions {
  url: string;
  token: string;
  tls?: { ca?: string | undefined; insecureSkipVerify: boolean } | undefined;
  handshakeTimeoutMs: number;
  keepAliveMs: number;
}

/** Reads the CA once, at start-up, so a missing file is a config error and not a redial loop. */
export function readCa(path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_CONFIG', `config error at tls.ca: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

export function openSocket(options: SocketOptions, ca: Buffer | undefined): WebSocket {
  const ws = new WebSocket(options.url, {
    headers: { Authorization: `Bearer ${options.token}` },
    perMessageDeflate: false,
    maxPayload: LIMITS.maxMessageBytes,
    handshakeTimeout: options.handshakeTimeoutMs,
    followRedirects: false,
    ...(ca ? { ca } : {}),
    rejectUnauthorized: !(options.tls?.insecureSkipVerify ?? false),
  });
  ws.once('upgrade', (res) => {
    res.socket.setKeepAlive(true, options.keepAliveMs);
    res.socket.setNoDelay(true);
  });
  return ws;
}
