import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../../shared/frames.js';
import { ERROR_CODES, SeedwireError, toSeedwireError } from '../../shared/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

function documentedCodes(): Map<string, number> {
  const rows = new Map<string, number>();
  for (const m of doc.matchAll(/^\| `(SEEDWIRE_[A-Z_]+)` \| (\d{3}) \|/gm)) rows.set(m[1]!, Number(m[2]));
  return rows;
}

describe('error code registry', () => {
  it('docs/errors.md lists exactly the codes in shared/errors.ts, with the same HTTP status', () => {
    const documented = documentedCodes();
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, { status }] of Object.entries(ERROR_CODES)) expect(documented.get(code), code).toBe(status);
  });

  it('docs/errors.md lists every WebSocket close code the code uses', () => {
    for (const code of Object.values(CLOSE_CODES)) expect(doc).toContain(`| ${code} |`);
  });

  it('every code is a SEEDWIRE_ string whose status is an HTTP error status', () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^SEEDWIRE_[A-Z_]+$/);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(600);
    }
  });

  it('normalises unknown throwables at the edge, keeping the cause', () => {
    const cause = new Error('boom');
    const err = toSeedwireError(cause);
    expect(err.code).toBe('SEEDWIRE_INTERNAL');
    expect(err.cause).toBe(cause);
    expect(toSeedwireError('text').message).toBe('text');
    const abort = new Error('aborted');
    abort.name = 'AbortError';
    expect(toSeedwireError(abort).code).toBe('SEEDWIRE_CANCELED');
    const own = new SeedwireError('SEEDWIRE_TIMEOUT', 'slow');
    expect(toSeedwireError(own)).toBe(own);
    expect(own.status).toBe(504);
    expect(own.toJSON()).toEqual({ code: 'SEEDWIRE_TIMEOUT', message: 'slow' });
  });
});
