/**
 * Reads a data connection's handshake: `Authorization: Bearer <stream token>` and what it claims
 * (agent, stream, role) from the headers of shared/data-link.ts. Pure, so its refusals are tested
 * without sockets. A refusal's message never contains the token.
 */
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
