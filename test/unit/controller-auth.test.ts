import { describe, expect, it } from 'vitest';
import { authenticateAgent, type AgentCredentials } from '../../server-stub/hub/auth.js';
import type { IdentityRow } from '../../server-stub/store/identities.js';
import { compareSecret, readBearer, secretMatcher } from '../../server-stub/hub/secret.js';
import { readCookie } from '../../server-stub/api/auth.js';

function row(agentId: string, state: IdentityRow['state'], method: IdentityRow['method'] = 'credential'): IdentityRow {
  return { agentId, state, method, hasCredential: method === 'credential', enrolledAt: null, revokedAt: null, readmittedAt: null };
}

describe('token comparison', () => {
  it('accepts only the exact token, whatever the lengths', () => {
    expect(compareSecret('s3cret', 's3cret')).toBe(true);
    expect(compareSecret('s3cre', 's3cret')).toBe(false);
    expect(compareSecret('s3cret!', 's3cret')).toBe(false);
    expect(compareSecret('', 's3cret')).toBe(false);
    expect(compareSecret('S3cret', 's3cret')).toBe(false);
    // The same answers from the matcher that hashes the expected secret once.
    const matches = secretMatcher('s3cret');
    expect(['s3cret', 's3cre', 's3cret!', '', 'S3cret'].map(matches)).toEqual([true, false, false, false, false]);
  });

  it('reads bearer tokens from the Authorization header only', () => {
    expect(readBearer('Bearer abc')).toBe('abc');
    expect(readBearer('bearer abc')).toBe('abc');
    expect(readBearer('Basic abc')).toBeNull();
    expect(readBearer('Bearer')).toBeNull();
    expect(readBearer(undefined)).toBeNull();
    expect(readBearer(['Bearer a', 'Bearer b'])).toBeNull();
  });

  it('maps the enrollment token, a per-agent token or a credential to its principal', async () => {
    const credentials: AgentCredentials = { shared: 'shared-token', perAgent: { 'db-1': 'one', 'db-2': 'two' } };
    const identities = new Map<string, IdentityRow>([
      ['db-3', row('db-3', 'enrolled')],
      ['db-4', row('db-4', 'revoked')],
      ['db-1', row('db-1', 'revoked', 'token')],
    ]);
    const byCredential: Record<string, string> = { 'cred-3': 'db-3', 'cred-4': 'db-4' };
    const lookup = {
      get: async (id: string) => identities.get(id) ?? null,
      findByCredential: async (credential: string) => identities.get(byCredential[credential] ?? '') ?? null,
    };
    const auth = (authorization: string | undefined, certificateId: string | null = null, creds = credentials) => authenticateAgent({ authorization, certificateId }, creds, lookup);
    expect(await auth('Bearer shared-token')).toEqual({ ok: true, principal: { kind: 'enrollment' } });
    expect(await auth('Bearer two')).toEqual({ ok: true, principal: { kind: 'agent', agentId: 'db-2', via: 'token' } });
    expect(await auth('Bearer cred-3')).toEqual({ ok: true, principal: { kind: 'agent', agentId: 'db-3', via: 'credential' } });
    expect(await auth('Bearer cred-4')).toMatchObject({ ok: false, reason: 'revoked', message: expect.stringContaining('db-4') });
    expect(await auth('Bearer one')).toMatchObject({ ok: false, reason: 'revoked' });
    expect(await auth('Bearer three')).toMatchObject({ ok: false, reason: 'wrong' });
    // A credential's shape that no identity holds (an enrollment never confirmed): refused, but told apart.
    expect(await auth(`Bearer swc_${'A'.repeat(43)}`)).toMatchObject({ ok: false, reason: 'unknown-credential', message: expect.stringContaining('enroll again') });
    expect(await auth(`Bearer swc_${'A'.repeat(42)}`)).toMatchObject({ ok: false, reason: 'wrong' });
    expect(await auth(undefined)).toMatchObject({ ok: false, reason: 'missing' });
    expect(await auth('Bearer shared-token', null, { shared: null, perAgent: {} })).toMatchObject({ ok: false, reason: 'wrong' });
    // A verified client certificate names the agent whatever the bearer says; revocation still applies.
    expect(await auth(undefined, 'db-9')).toEqual({ ok: true, principal: { kind: 'agent', agentId: 'db-9', via: 'certificate' } });
    expect(await auth('Bearer shared-token', 'db-4')).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('reads the admin cookie', () => {
    expect(readCookie('a=1; seedwire_admin=t%2Bk; b=2', 'seedwire_admin')).toBe('t+k');
    expect(readCookie('a=1', 'seedwire_admin')).toBeNull();
  });
});
