/**
 * Reads a data connection's handshake: `Authorization: Bearer <stream token>` and what it claims
 * (agent, stream, role) from the headers of shared/data-link.ts, and the WebSocket opening
 * handshake itself (RFC 6455, section 4.2.1), which the controller answers on its own so that the
 * relay owns the socket (data-peer.ts says why). Pure, so its refusals are tested without sockets.
 * A refusal's message never contains the token.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { DATA_HEADERS, DataRoleSchema } from '../../shared/data-link.js';
import type { ErrorCode } from '../../shared/errors.js';
import type { DataClaim } from './stream-tokens.js';

export type DataClaimParse = { ok: true; token: string; claim: DataClaim } | { ok: false; status: 400 | 401; code: ErrorCode; message: string };

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? undefined : value;
}

export function readDataClaim(headers: IncomingHttpHeaders): DataClaimParse {
  const authorization = single(headers, 'authorization');
  const bearer = authorization === undefined ? null : /^Bearer ([A-Za-z0-9_-]{16,256})$/.exec(authorization);
  if (!bearer?.[1]) return { ok: false, status: 401, code: 'SEEDWIRE_AUTH', message: 'a data connection needs its stream token as Authorization: Bearer' };
  const agentId = single(headers, DATA_HEADERS.agent);
  if (agentId === undefined || agentId.length === 0 || agentId.length > 128) {
    return { ok: false, status: 400, code: 'SEEDWIRE_BAD_REQUEST', message: `a data connection needs the ${DATA_HEADERS.agent} header (1 to 128 characters)` };
  }
  const streamText = single(headers, DATA_HEADERS.stream) ?? '';
  const stream = /^\d{1,10}$/.test(streamText) ? Number(streamText) : NaN;
  if (!Number.isSafeInteger(stream)) return { ok: false, status: 400, code: 'SEEDWIRE_BAD_REQUEST', message: `a data connection needs the ${DATA_HEADERS.stream} header (a stream id)` };
  const role = DataRoleSchema.safeParse(single(headers, DATA_HEADERS.role));
  if (!role.success) return { ok: false, status: 400, code: 'SEEDWIRE_BAD_REQUEST', message: `a data connection needs the ${DATA_HEADERS.role} header (send or receive)` };
  return { ok: true, token: bearer[1], claim: { stream, agentId, role: role.data } };
}

/** The GUID every WebSocket server appends to the client's key (RFC 6455, section 1.3). */
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export type WebSocketHandshake = { ok: true; key: string } | { ok: false; status: 400 | 405; code: ErrorCode; message: string };

/**
 * Checks an upgrade request as a WebSocket opening handshake: GET, `Upgrade: websocket`, a
 * `Sec-WebSocket-Key` of 16 bytes in base64, version 13. No extension or subprotocol is ever
 * accepted: a client that offers permessage-deflate gets plain frames, as the RFC allows.
 */
export function readWebSocketHandshake(request: { method?: string | undefined; headers: IncomingHttpHeaders }): WebSocketHandshake {
  if (request.method !== 'GET') return { ok: false, status: 405, code: 'SEEDWIRE_BAD_REQUEST', message: `a data connection is a GET upgrade, not ${request.method ?? 'no method'}` };
  const upgrade = single(request.headers, 'upgrade');
  if (upgrade?.toLowerCase() !== 'websocket') return { ok: false, status: 400, code: 'SEEDWIRE_BAD_REQUEST', message: 'a data connection needs Upgrade: websocket' };
  const key = single(request.headers, 'sec-websocket-key');
  if (key === undefined || !/^[+/0-9A-Za-z]{21}[AQgw]==$/.test(key)) {
    return { ok: false, status: 400, code: 'SEEDWIRE_BAD_REQUEST', message: 'a data connection needs a Sec-WebSocket-Key of 16 bytes in base64' };
  }
  if (single(request.headers, 'sec-websocket-version') !== '13') return { ok: false, status: 400, code: 'SEEDWIRE_BAD_REQUEST', message: 'a data connection needs Sec-WebSocket-Version: 13' };
  return { ok: true, key };
}

/** The `Sec-WebSocket-Accept` value answering `key`. */
export function acceptValueOf(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}
