import { describe, expect, it } from 'vitest';
import { authenticateAgent } from '../../server-stub/hub/auth.js';
import { compareSecret, readBearer } from '../../server-stub/hub/secret.js';
import { readCookie } from '../../server-stub/api/auth.js';

describe('token comparison', () => {
  it('accepts only the exact token, whatever the lengths', () => {
    expect(compareSecret('s3cret', 's3cret')).toBe(true);
    expect(compareSecret('s3cre', 's3cret')).toBe(false);
    expect(compareSecret('s3cret!', 's3cret')).toBe(false);
    expect(compareSecret('', 's3cret')).toBe(false);
    expect(compareSecret('S3cret', 's3cret')).toBe(false);
  });

  it('reads bearer tokens from the Authorization header only', () => {
    expect(readBearer('Bearer abc')).toBe('abc');
    expect(readBearer('bearer abc')).toBe('abc');
    expect(readBearer('Basic abc')).toBeNull();
    expect(readBearer('Bearer')).toBeNull();
    expect(readBearer(undefined)).toBeNull();
    expect(readBearer(['Bearer a', 'Bearer b'])).toBeNull();
  });

  it('maps a shared or per-agent token to its principal', () => {
    const credentials = { shared: 'shared-token', perAgent: { 'db-1': 'one', 'db-2': 'two' } };
    expect(authenticateAgent('Bearer shared-token', credentials)).toEqual({ kind: 'shared' });
    expect(authenticateAgent('Bearer two', credentials)).toEqual({ kind: 'agent', agentId: 'db-2' });
    expect(authenticateAgent('Bearer three', credentials)).toBeNull();
    expect(authenticateAgent(undefined, credentials)).toBeNull();
    expect(authenticateAgent('Bearer shared-token', { shared: null, perAgent: {} })).toBeNull();
  });

  it('reads the admin cookie', () => {
    expect(readCookie('a=1; seedwire_admin=t%2Bk; b=2', 'seedwire_admin')).toBe('t+k');
    expect(readCookie('a=1', 'seedwire_admin')).toBeNull();
  });
});
