/**
 * The identity rules without sockets: what a hello may do, the identity table's transitions, the
 * failure limiter and its summary lines, certificate names, and the agent's credential file.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mergeConfigSources, validateConfig } from '../../agent/config/load.js';
import { AgentIdentity, CREDENTIAL_FILE } from '../../agent/connection/identity.js';
import { certificateNames } from '../../server-stub/hub/client-cert.js';
import { ExposureGuard } from '../../server-stub/hub/exposure.js';
import { decideHello, makeCredential } from '../../server-stub/hub/identity.js';
import { closeDatabase, openDatabase } from '../../server-stub/store/db.js';
import { createSqliteExecutor } from '../../server-stub/store/sql.js';
import { createIdentityStore, hashCredential, type IdentityRow } from '../../server-stub/store/identities.js';
import { CLOSE_CODES } from '../../shared/frames.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sw-identity-unit-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A pino logger whose records land in an array (parsed JSON). */
function capturingLogger(): { log: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') records.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), records };
}

function row(state: IdentityRow['state'], method: IdentityRow['method'] = 'credential'): IdentityRow {
  return { agentId: 'db-1', state, method, hasCredential: method === 'credential', enrolledAt: null, revokedAt: null, readmittedAt: null };
}

describe('decideHello', () => {
  const none = { hasOwnToken: () => false, identity: null, connected: false };
  const enrollment = { kind: 'enrollment' } as const;

  it('lets the enrollment token enroll a free id, or one readmitted', () => {
    expect(decideHello(enrollment, 'db-1', none)).toEqual({ action: 'enroll' });
    expect(decideHello(enrollment, 'db-1', { ...none, identity: row('readmitted') })).toEqual({ action: 'enroll' });
  });

  it('never lets the enrollment token claim an enrolled, revoked, connected or token-owning id', () => {
    for (const context of [
      { ...none, identity: row('enrolled') },
      { ...none, identity: row('enrolled', 'certificate') },
      { ...none, identity: row('revoked') },
      { ...none, connected: true },
      { ...none, hasOwnToken: (id: string) => id === 'db-1' },
    ]) {
      const decision = decideHello(enrollment, 'db-1', context);
      expect(decision).toMatchObject({ action: 'refuse', closeCode: CLOSE_CODES.identityRefused, message: expect.stringContaining('db-1') });
    }
  });

  it('admits a credential, token or certificate only for its own id, never a revoked one', () => {
    const credential = { kind: 'agent', agentId: 'db-1', via: 'credential' } as const;
    expect(decideHello(credential, 'db-1', { ...none, identity: row('enrolled'), connected: true })).toEqual({ action: 'admit' });
    expect(decideHello(credential, 'db-2', none)).toMatchObject({ action: 'refuse', closeCode: 1008, message: expect.stringMatching(/credential belongs to agent db-1/) });
    expect(decideHello({ kind: 'agent', agentId: 'db-1', via: 'certificate' }, 'db-2', none)).toMatchObject({ action: 'refuse', message: expect.stringMatching(/client certificate/) });
    expect(decideHello({ kind: 'agent', agentId: 'db-1', via: 'token' }, 'db-1', { ...none, identity: row('revoked', 'token') })).toMatchObject({ action: 'refuse', closeCode: CLOSE_CODES.identityRefused });
  });

  it('makes credentials that are long, random and recognisable', () => {
    const a = makeCredential();
    expect(a).toMatch(/^swc_[A-Za-z0-9_-]{43}$/);
    expect(makeCredential()).not.toBe(a);
  });
});

describe('identity store', () => {
  it('enrolls once, revokes, readmits for exactly one more enrollment', async () => {
    const db = openDatabase(tempDir());
    try {
      const store = createIdentityStore(createSqliteExecutor(db));
      expect(await store.enroll('db-1', hashCredential('c1'), 't1')).toBe(true);
      expect(await store.enroll('db-1', hashCredential('c2'), 't2')).toBe(false); // the first enrollment stands
      expect(await store.findByCredential('c1')).toMatchObject({ agentId: 'db-1', state: 'enrolled', method: 'credential' });
      expect(await store.findByCredential('c2')).toBeNull();
      expect(await store.readmit('db-1', 't3')).toBeNull(); // not revoked
      expect(await store.revoke('db-1', 'credential', 't4')).toMatchObject({ state: 'revoked', revokedAt: 't4' });
      expect(await store.findByCredential('c1')).toMatchObject({ state: 'revoked' }); // recognised, as revoked
      expect(await store.enroll('db-1', hashCredential('c5'), 't5')).toBe(false);
      expect(await store.readmit('db-1', 't6')).toMatchObject({ state: 'readmitted', readmittedAt: 't6' });
      expect(await store.enroll('db-1', hashCredential('c7'), 't7')).toBe(true);
      expect(await store.enroll('db-1', hashCredential('c8'), 't8')).toBe(false);
      expect(await store.findByCredential('c1')).toBeNull();
      expect(await store.get('db-1')).toMatchObject({ state: 'enrolled', enrolledAt: 't7' });
      // Only the hash is stored.
      const raw = db.prepare('SELECT credential_hash FROM agent_identities').all() as Array<{ credential_hash: string }>;
      expect(raw).toEqual([{ credential_hash: hashCredential('c7') }]);
    } finally {
      closeDatabase(db);
    }
  });

  it('records ids admitted by token or certificate, and keeps a revoked one revoked', async () => {
    const db = openDatabase(tempDir());
    try {
      const store = createIdentityStore(createSqliteExecutor(db));
      await store.noteAdmitted('db-t', 'token', 't1');
      expect(await store.get('db-t')).toMatchObject({ state: 'enrolled', method: 'token', hasCredential: false });
      await store.revoke('db-t', 'token', 't2');
      await store.noteAdmitted('db-t', 'token', 't3');
      expect((await store.get('db-t'))?.state).toBe('revoked');
      await store.readmit('db-t', 't4');
      await store.noteAdmitted('db-t', 'token', 't5');
      expect((await store.get('db-t'))?.state).toBe('enrolled');
    } finally {
      closeDatabase(db);
    }
  });
});

describe('ExposureGuard', () => {
  const options = { authFailureLimit: 3, authFailureWindowMs: 60_000, refusalLogIntervalMs: 10_000, maxPendingHandshakes: 10 };

  it('limits an address after the limit until its window ends; other addresses are unaffected', () => {
    let now = 1_000_000;
    const { log } = capturingLogger();
    const guard = new ExposureGuard(options, log, () => now);
    for (let i = 0; i < 3; i++) {
      expect(guard.retryAfterSeconds('10.0.0.1')).toBeNull();
      guard.recordFailure('10.0.0.1', 'wrong-token');
    }
    expect(guard.retryAfterSeconds('10.0.0.1')).toBe(60);
    expect(guard.retryAfterSeconds('10.0.0.2')).toBeNull();
    now += 45_500;
    expect(guard.retryAfterSeconds('10.0.0.1')).toBe(15);
    now += 15_000;
    expect(guard.retryAfterSeconds('10.0.0.1')).toBeNull();
    guard.dispose();
  });

  it('logs one line at the first refusal and one summary per interval, never one per refusal', () => {
    const now = 0;
    const { log, records } = capturingLogger();
    const guard = new ExposureGuard(options, log, () => now);
    for (let i = 0; i < 500; i++) guard.recordFailure(`10.0.${i % 7}.1`, 'wrong-token');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ msg: 'agent connections refused', total: 1 });
    for (let i = 0; i < 100; i++) guard.noteRefusal('10.0.0.1', 'rate-limited');
    guard.dispose(); // flushes what the interval gathered
    expect(records).toHaveLength(2);
    expect(records[1]).toMatchObject({ total: 599, refused: { 'wrong-token': 499, 'rate-limited': 100 }, distinctAddresses: 7 });
    expect((records[1]!['addresses'] as unknown[]).length).toBe(5);
  });
});

describe('client certificate names', () => {
  it('takes the CN first, then DNS subject alternative names', () => {
    expect(certificateNames('db-7', 'DNS:db-7.example, IP Address:10.0.0.1')).toEqual(['db-7', 'db-7.example']);
    expect(certificateNames(undefined, 'URI:spiffe://x/y, DNS:db-8')).toEqual(['db-8']);
    expect(certificateNames(['a', 'b'], undefined)).toEqual(['a']);
  });
});

describe('AgentIdentity (the agent side)', () => {
  const { log } = capturingLogger();

  it('presents the enrollment token until it holds a credential, then the credential (0600, atomic)', async () => {
    const stateDir = tempDir();
    const identity = new AgentIdentity({ stateDir, agentId: 'db-1', enrollmentToken: 'enroll-me', log });
    expect(identity.bearer()).toEqual({ token: 'enroll-me', kind: 'enrollment' });
    await identity.save('db-1', 'swc_0123456789012345678901234567890123456789');
    expect(identity.bearer()).toEqual({ token: 'swc_0123456789012345678901234567890123456789', kind: 'credential' });
    expect(statSync(join(stateDir, CREDENTIAL_FILE)).mode & 0o777).toBe(0o600);
    expect(readdirSync(stateDir)).toEqual([CREDENTIAL_FILE]); // no temp file left behind
    // A restarted agent reads it back.
    expect(new AgentIdentity({ stateDir, agentId: 'db-1', enrollmentToken: 'enroll-me', log }).bearer().kind).toBe('credential');
    await expect(identity.save('db-2', 'swc_0123456789012345678901234567890123456789')).rejects.toMatchObject({ code: 'SEEDWIRE_AUTH' });
  });

  it('falls back to enrollment after the credential is refused; ignores a credential of another id or a broken file', () => {
    const stateDir = tempDir();
    writeFileSync(join(stateDir, CREDENTIAL_FILE), JSON.stringify({ agentId: 'db-1', credential: 'swc_0123456789012345678901234567890123456789', enrolledAt: 'x' }), { mode: 0o600 });
    const identity = new AgentIdentity({ stateDir, agentId: 'db-1', enrollmentToken: 'enroll-me', log });
    expect(identity.bearer().kind).toBe('credential');
    identity.refused('credential', { status: 401, code: 'SEEDWIRE_AUTH', message: 'revoked' });
    expect(identity.bearer()).toEqual({ token: 'enroll-me', kind: 'enrollment' });
    expect(new AgentIdentity({ stateDir, agentId: 'db-2', enrollmentToken: 'enroll-me', log }).bearer().kind).toBe('enrollment');
    writeFileSync(join(stateDir, CREDENTIAL_FILE), '{not json');
    expect(new AgentIdentity({ stateDir, agentId: 'db-1', enrollmentToken: null, log }).bearer()).toEqual({ token: null, kind: 'none' });
    expect(readFileSync(join(stateDir, CREDENTIAL_FILE), 'utf8')).toBe('{not json'); // left for the operator to inspect
  });
});

describe('agent token sources', () => {
  it('--token-file beats the environment and the file’s token; --token with --token-file is refused', () => {
    expect(mergeConfigSources({ token: 'in-file' }, { tokenFile: '/etc/seedwire/token' }, { SEEDWIRE_AGENT_TOKEN: 'in-env' })).toEqual({ tokenFile: '/etc/seedwire/token' });
    expect(mergeConfigSources({ tokenFile: '/x' }, {}, { SEEDWIRE_AGENT_TOKEN: 'in-env' })).toEqual({ token: 'in-env' });
    expect(() => mergeConfigSources({}, { token: 'a', tokenFile: '/x' }, {})).toThrow(/--token-file/);
  });

  it('a client certificate stands in for the token; tls.cert needs tls.key', () => {
    expect(validateConfig({ controller: 'wss://c/agent', tls: { cert: '/c.pem', key: '/k.pem' } }).tls).toMatchObject({ cert: '/c.pem', key: '/k.pem' });
    expect(() => validateConfig({ controller: 'wss://c/agent', tls: { cert: '/c.pem' } })).toThrow(/tls\.key/);
    expect(() => validateConfig({ controller: 'wss://c/agent' })).toThrow(/token: required/);
  });
});
