/**
 * The agent_identities table: which agent ids are enrolled (and by what), revoked, or re-admitted.
 * A credential is kept only as its SHA-256: the controller can recognise it but never show it.
 * No row means the id never enrolled, so the enrollment token may claim it.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

export type IdentityState = 'enrolled' | 'revoked' | 'readmitted';
/** How the id proves itself: its enrolled credential, a per-agent token (--agent-tokens), or a client certificate. */
export type IdentityMethod = 'credential' | 'token' | 'certificate';

export interface IdentityRow {
  agentId: string;
  state: IdentityState;
  method: IdentityMethod;
  hasCredential: boolean;
  enrolledAt: string | null;
  revokedAt: string | null;
  readmittedAt: string | null;
}

interface RawIdentity {
  agent_id: string;
  state: IdentityState;
  method: IdentityMethod;
  credential_hash: string | null;
  enrolled_at: string | null;
  revoked_at: string | null;
  readmitted_at: string | null;
}

function toRow(raw: RawIdentity): IdentityRow {
  return {
    agentId: raw.agent_id,
    state: raw.state,
    method: raw.method,
    hasCredential: raw.credential_hash !== null,
    enrolledAt: raw.enrolled_at,
    revokedAt: raw.revoked_at,
    readmittedAt: raw.readmitted_at,
  };
}

/** SHA-256 (hex) of a credential: enough for a random 256-bit secret, and what the table stores. */
export function hashCredential(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex');
}

export interface IdentityStore {
  get(agentId: string): IdentityRow | null;
  /** The identity a presented credential belongs to (in any state), or null. */
  findByCredential(credential: string): IdentityRow | null;
  /**
   * Commits an enrollment: only when the id has no identity yet or was re-admitted (one
   * enrollment per readmit). Returns false when it may not enroll (enrolled meanwhile, revoked).
   */
  enroll(agentId: string, credentialHash: string, at: string): boolean;
  /** Records that a per-agent token or a certificate admitted the id (a re-admitted id becomes enrolled again). */
  noteAdmitted(agentId: string, method: Exclude<IdentityMethod, 'credential'>, at: string): void;
  /** Revokes whatever the id enrolled with; the row stays so its credential is recognised as revoked. */
  revoke(agentId: string, method: IdentityMethod, at: string): IdentityRow;
  /** A revoked id may enroll once more. Returns null when the id is not revoked. */
  readmit(agentId: string, at: string): IdentityRow | null;
}

export function createIdentityStore(db: Database.Database): IdentityStore {
  const selectOne = db.prepare('SELECT * FROM agent_identities WHERE agent_id = ?');
  const selectByHash = db.prepare('SELECT * FROM agent_identities WHERE credential_hash = ?');
  const upsertEnrolled = db.prepare(`
    INSERT INTO agent_identities (agent_id, state, method, credential_hash, enrolled_at, updated_at)
    VALUES (@agentId, 'enrolled', @method, @hash, @at, @at)
    ON CONFLICT (agent_id) DO UPDATE SET state = 'enrolled', method = excluded.method,
      credential_hash = excluded.credential_hash, enrolled_at = excluded.enrolled_at, updated_at = excluded.updated_at`);
  const upsertRevoked = db.prepare(`
    INSERT INTO agent_identities (agent_id, state, method, revoked_at, updated_at)
    VALUES (@agentId, 'revoked', @method, @at, @at)
    ON CONFLICT (agent_id) DO UPDATE SET state = 'revoked', revoked_at = excluded.revoked_at, updated_at = excluded.updated_at`);
  const setReadmitted = db.prepare("UPDATE agent_identities SET state = 'readmitted', readmitted_at = @at, updated_at = @at WHERE agent_id = @agentId AND state = 'revoked'");

  const get = (agentId: string): IdentityRow | null => {
    const raw = selectOne.get(agentId) as RawIdentity | undefined;
    return raw ? toRow(raw) : null;
  };

  const enroll = db.transaction((agentId: string, hash: string, at: string): boolean => {
    const current = get(agentId);
    if (current && current.state !== 'readmitted') return false;
    upsertEnrolled.run({ agentId, method: 'credential', hash, at });
    return true;
  });

  const noteAdmitted = db.transaction((agentId: string, method: Exclude<IdentityMethod, 'credential'>, at: string): void => {
    const current = get(agentId);
    if (current?.state === 'enrolled' || current?.state === 'revoked') return;
    upsertEnrolled.run({ agentId, method, hash: null, at });
  });

  return {
    get,
    findByCredential(credential) {
      const raw = selectByHash.get(hashCredential(credential)) as RawIdentity | undefined;
      return raw ? toRow(raw) : null;
    },
    enroll: (agentId, credentialHash, at) => enroll(agentId, credentialHash, at),
    noteAdmitted: (agentId, method, at) => noteAdmitted(agentId, method, at),
    revoke(agentId, method, at) {
      upsertRevoked.run({ agentId, method, at });
      return get(agentId)!;
    },
    readmit(agentId, at) {
      return setReadmitted.run({ agentId, at }).changes === 1 ? get(agentId) : null;
    },
  };
}
