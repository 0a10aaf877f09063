/**
 * The agent_identities table: which agent ids are enrolled (and by what), revoked, or re-admitted.
 * A credential is kept only as its SHA-256: the controller can recognise it but never show it.
 * No row means the id never enrolled, so the enrollment token may claim it.
 */
import { createHash } from 'node:crypto';
import type { SqlExecutor } from './sql.js';

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
  get(agentId: string): Promise<IdentityRow | null>;
  /** Every identity, for listing the fleet without one read per agent. */
  list(): Promise<IdentityRow[]>;
  /** The identity a presented credential belongs to (in any state), or null. */
  findByCredential(credential: string): Promise<IdentityRow | null>;
  /**
   * Commits an enrollment: only when the id has no identity yet or was re-admitted (one
   * enrollment per readmit). Returns false when it may not enroll (enrolled meanwhile, revoked).
   */
  enroll(agentId: string, credentialHash: string, at: string): Promise<boolean>;
  /** Records that a per-agent token or a certificate admitted the id (a re-admitted id becomes enrolled again). */
  noteAdmitted(agentId: string, method: Exclude<IdentityMethod, 'credential'>, at: string): Promise<void>;
  /** Revokes whatever the id enrolled with; the row stays so its credential is recognised as revoked. */
  revoke(agentId: string, method: IdentityMethod, at: string): Promise<IdentityRow>;
  /** A revoked id may enroll once more. Returns null when the id is not revoked. */
  readmit(agentId: string, at: string): Promise<IdentityRow | null>;
}

/**
 * One statement decides and writes, so two controllers (or connections) cannot both enroll an id:
 * the insert wins for a new id, the update only over a re-admitted one.
 */
const UPSERT_ENROLLED = `
    INSERT INTO agent_identities (agent_id, state, method, credential_hash, enrolled_at, updated_at)
    VALUES (?, 'enrolled', ?, ?, ?, ?)
    ON CONFLICT (agent_id) DO UPDATE SET state = 'enrolled', method = excluded.method,
      credential_hash = excluded.credential_hash, enrolled_at = excluded.enrolled_at, updated_at = excluded.updated_at
    WHERE agent_identities.state = 'readmitted'`;

export function createIdentityStore(sql: SqlExecutor): IdentityStore {
  const get = async (agentId: string): Promise<IdentityRow | null> => {
    const raw = await sql.get<RawIdentity>('SELECT * FROM agent_identities WHERE agent_id = ?', [agentId]);
    return raw ? toRow(raw) : null;
  };
  return {
    get,
    async list() {
      return (await sql.all<RawIdentity>('SELECT * FROM agent_identities ORDER BY agent_id')).map(toRow);
    },
    async findByCredential(credential) {
      const raw = await sql.get<RawIdentity>('SELECT * FROM agent_identities WHERE credential_hash = ?', [hashCredential(credential)]);
      return raw ? toRow(raw) : null;
    },
    async enroll(agentId, credentialHash, at) {
      return (await sql.run(UPSERT_ENROLLED, [agentId, 'credential', credentialHash, at, at])).changes === 1;
    },
    async noteAdmitted(agentId, method, at) {
      // An enrolled or revoked id keeps its row as it is.
      await sql.run(UPSERT_ENROLLED, [agentId, method, null, at, at]);
    },
    async revoke(agentId, method, at) {
      await sql.run(
        `INSERT INTO agent_identities (agent_id, state, method, revoked_at, updated_at)
    VALUES (?, 'revoked', ?, ?, ?)
    ON CONFLICT (agent_id) DO UPDATE SET state = 'revoked', revoked_at = excluded.revoked_at, updated_at = excluded.updated_at`,
        [agentId, method, at, at],
      );
      return (await get(agentId))!;
    },
    async readmit(agentId, at) {
      const { changes } = await sql.run("UPDATE agent_identities SET state = 'readmitted', readmitted_at = ?, updated_at = ? WHERE agent_id = ? AND state = 'revoked'", [at, at, agentId]);
      return changes === 1 ? get(agentId) : null;
    },
  };
}
