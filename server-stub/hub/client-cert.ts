/**
 * The agent id carried by a client certificate (mutual TLS, --tls-client-ca). The TLS layer asks
 * for a certificate but does not reject connections without one (the API, the console and
 * token-authenticated agents share the port); this decides what a presented certificate means.
 */
import type { TLSSocket } from 'node:tls';
import { IdSchema } from '../../shared/frames.js';

export interface CertificateIdentity {
  /** The verified certificate's agent id: its CN, else its first DNS subject alternative name. */
  agentId: string | null;
  /** Why a presented certificate is refused (untrusted, no usable id); null when acceptable or absent. */
  error: string | null;
}

const NONE: CertificateIdentity = { agentId: null, error: null };

/** Candidate ids of a certificate, in order: the CN, then DNS names from subjectAltName. */
export function certificateNames(subjectCn: string | string[] | undefined, subjectAltName: string | undefined): string[] {
  const names: string[] = [];
  const cn = Array.isArray(subjectCn) ? subjectCn[0] : subjectCn;
  if (cn) names.push(cn);
  for (const entry of (subjectAltName ?? '').split(',')) {
    const match = /^\s*DNS:(.+?)\s*$/.exec(entry);
    if (match) names.push(match[1]!);
  }
  return names;
}

export function readCertificateIdentity(socket: TLSSocket): CertificateIdentity {
  if (typeof socket.getPeerCertificate !== 'function') return NONE;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return NONE;
  if (!socket.authorized) return { agentId: null, error: `client certificate not trusted: ${String(socket.authorizationError ?? 'unverified')}` };
  const id = certificateNames(cert.subject?.CN, cert.subjectaltname).find((name) => IdSchema.safeParse(name).success);
  if (id === undefined) return { agentId: null, error: 'the client certificate names no usable agent id (CN or a DNS subject alternative name)' };
  return { agentId: id, error: null };
}
