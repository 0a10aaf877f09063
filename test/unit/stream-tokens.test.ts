/** Stream tokens, a data connection's handshake headers and the params the store keeps: pure rules. */
import { describe, expect, it } from 'vitest';
import { dataUrlOf } from '../../agent/connection/data-dial.js';
import { readDataClaim } from '../../server-stub/hub/data-upgrade.js';
import { StreamTokenRegistry } from '../../server-stub/hub/stream-tokens.js';
import { withoutSecrets } from '../../server-stub/ops/secrets.js';

describe('StreamTokenRegistry', () => {
  it('accepts a token once, for its stream, agent and role, until it expires or the stream is revoked', () => {
    let now = 1_000;
    const registry = new StreamTokenRegistry(60_000, () => now);
    const tokens = registry.mint(7, { from: 'src', to: 'dst' });
    expect(registry.claim(tokens.send, { stream: 7, agentId: 'src', role: 'receive' })).toMatchObject({ ok: false, status: 403, message: 'the stream token is not for role receive' });
    expect(registry.claim(tokens.send, { stream: 7, agentId: 'src', role: 'send' })).toEqual({ ok: true });
    expect(registry.claim(tokens.send, { stream: 7, agentId: 'src', role: 'send' })).toMatchObject({ ok: false, status: 401, message: expect.stringContaining('already used') });
    now += 60_000;
    expect(registry.claim(tokens.receive, { stream: 7, agentId: 'dst', role: 'receive' })).toMatchObject({ ok: false, status: 401, code: 'SEEDWIRE_AUTH', message: expect.stringContaining('expired'), unknown: false });
    registry.revoke(7);
    expect(registry.size).toBe(0);
    expect(registry.claim(tokens.receive, { stream: 7, agentId: 'dst', role: 'receive' })).toMatchObject({ ok: false, unknown: true });
  });

  it('mints different tokens for each side and each stream', () => {
    const registry = new StreamTokenRegistry(60_000);
    const a = registry.mint(1, { from: 'x', to: 'y' });
    const b = registry.mint(2, { from: 'x', to: 'y' });
    expect(new Set([a.send, a.receive, b.send, b.receive]).size).toBe(4);
  });
});

describe('readDataClaim', () => {
  const good = { authorization: `Bearer ${'a'.repeat(43)}`, 'x-seedwire-agent': 'db-1', 'x-seedwire-stream': '12', 'x-seedwire-role': 'receive' };
  it('reads the token and the claim', () => {
    expect(readDataClaim(good)).toEqual({ ok: true, token: 'a'.repeat(43), claim: { stream: 12, agentId: 'db-1', role: 'receive' } });
  });
  it('refuses, naming what is wrong and never echoing the token', () => {
    expect(readDataClaim({ ...good, authorization: undefined })).toMatchObject({ ok: false, status: 401 });
    expect(readDataClaim({ ...good, authorization: 'Bearer short' })).toMatchObject({ ok: false, status: 401 });
    expect(readDataClaim({ ...good, 'x-seedwire-stream': '-1' })).toMatchObject({ ok: false, status: 400, message: expect.stringContaining('x-seedwire-stream') });
    expect(readDataClaim({ ...good, 'x-seedwire-role': 'both' })).toMatchObject({ ok: false, status: 400, message: expect.stringContaining('x-seedwire-role') });
    const missingAgent = readDataClaim({ ...good, 'x-seedwire-agent': undefined });
    expect(missingAgent).toMatchObject({ ok: false, status: 400, message: expect.stringContaining('x-seedwire-agent') });
    expect(JSON.stringify(missingAgent)).not.toContain('a'.repeat(43));
  });
});

describe('dataUrlOf', () => {
  it('puts /data beside the control path, keeping scheme, host and port', () => {
    expect(dataUrlOf('ws://127.0.0.1:7070/agent')).toBe('ws://127.0.0.1:7070/data');
    expect(dataUrlOf('wss://ctl.example:443/agent')).toBe('wss://ctl.example/data');
  });
});

describe('withoutSecrets', () => {
  it("replaces a seed step's stream token and leaves other params alone", () => {
    const params = { seedId: 's', stream: 3, data: { token: 'secret-token-value-123' } };
    expect(withoutSecrets(params)).toEqual({ seedId: 's', stream: 3, data: { token: '[redacted]' } });
    expect(params.data.token).toBe('secret-token-value-123');
    const plain = { seedId: 's' };
    expect(withoutSecrets(plain)).toBe(plain);
  });
});
