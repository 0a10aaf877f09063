/**
 * Which bearer token the agent presents, and its own credential.
 *
 * The configured token is the controller's enrollment token: with it a new agent id enrolls once
 * and receives its own credential, kept in `stateDir/credential.json` (0600, written atomically
 * and fsynced before the controller is told it is safe). From then on the agent presents the
 * credential; the enrollment token alone can no longer claim its id. When the controller refuses
 * the credential (revoked, or a controller that never issued it), the agent falls back to the
 * enrollment token, which succeeds only for an id the controller lets enroll (e.g. after readmit).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { SeedwireError } from '../../shared/errors.js';
import { IdSchema } from '../../shared/frames.js';

export const CREDENTIAL_FILE = 'credential.json';

const StoredCredential = z.object({ agentId: IdSchema, credential: z.string().min(32).max(256), enrolledAt: z.string() }).strict();
export type StoredCredential = z.infer<typeof StoredCredential>;

export type BearerKind = 'credential' | 'enrollment' | 'none';

export interface IdentityOptions {
  stateDir: string;
  agentId: string;
  /** The configured token (the controller's enrollment token, or a per-agent token); null with only a client certificate. */
  enrollmentToken: string | null;
  log: Logger;
}

/** Reads the stored credential; null when absent, unreadable (logged) or for another agent id. */
export function readCredential(stateDir: string, agentId: string, log: Logger): string | null {
  const path = join(stateDir, CREDENTIAL_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    log.warn({ path, err: { message: (error as Error).message } }, 'credential file unreadable; enrolling again');
    return null;
  }
  const parsed = StoredCredential.safeParse(raw);
  if (!parsed.success) {
    log.warn({ path }, 'credential file malformed; enrolling again');
    return null;
  }
  if (parsed.data.agentId !== agentId) {
    log.warn({ path, credentialFor: parsed.data.agentId }, 'the stored credential belongs to another agent id; enrolling this id');
    return null;
  }
  return parsed.data.credential;
}

/** Replaces `path` with `text` (mode 0600): temp file, fsync, rename, fsync of the directory. */
async function writeFileAtomic(dir: string, name: string, text: string): Promise<void> {
  const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(temp, 'wx', 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(temp, join(dir, name));
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const directory = await open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

export class AgentIdentity {
  private credential: string | null;
  private credentialRefused = false;

  constructor(private readonly options: IdentityOptions) {
    this.credential = readCredential(options.stateDir, options.agentId, options.log);
  }

  /** Whether a credential is stored (the agent has enrolled with some controller). */
  get enrolled(): boolean {
    return this.credential !== null;
  }

  /** The token for the next dial. */
  bearer(): { token: string | null; kind: BearerKind } {
    if (this.credential !== null && (!this.credentialRefused || this.options.enrollmentToken === null)) return { token: this.credential, kind: 'credential' };
    if (this.options.enrollmentToken !== null) return { token: this.options.enrollmentToken, kind: 'enrollment' };
    return { token: null, kind: 'none' };
  }

  /** The controller refused the upgrade (401, with its error code and message) that presented `kind`. */
  refused(kind: BearerKind, refusal: { status: number; code: string | null; message: string }): void {
    const { log } = this.options;
    const fields = { status: refusal.status, code: refusal.code, refusal: refusal.message, presented: kind };
    if (kind === 'credential') {
      this.credentialRefused = true;
      log.error(
        { ...fields, next: this.options.enrollmentToken === null ? 'retrying the credential' : 'trying enrollment' },
        "the controller refused this agent's credential (revoked, or unknown to this controller); an operator can readmit the agent",
      );
    } else {
      log.error(fields, 'the controller refused the agent token');
    }
  }

  /** Stores a credential the controller issued; resolves once it is durable. */
  async save(agentId: string, credential: string): Promise<void> {
    if (agentId !== this.options.agentId) throw new SeedwireError('SEEDWIRE_AUTH', `the controller enrolled agent ${agentId}, but this agent is ${this.options.agentId}`);
    const record: StoredCredential = { agentId, credential, enrolledAt: new Date().toISOString() };
    await writeFileAtomic(this.options.stateDir, CREDENTIAL_FILE, `${JSON.stringify(record)}\n`);
    this.credential = credential;
    this.credentialRefused = false;
    this.options.log.info({ path: join(this.options.stateDir, CREDENTIAL_FILE) }, 'enrolled: credential stored; the agent presents it from now on');
  }
}
