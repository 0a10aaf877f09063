import { describe, expect, it } from 'vitest';
import { SeedwireError } from '../../shared/errors.js';
import { makeErrorFrame, normaliseOpError } from '../../agent/dispatch/outcome.js';

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

describe('the error an operation reports', () => {
  it('names a full file system SEEDWIRE_NO_SPACE, keeping the errno message and cause', () => {
    const cause = errnoError('ENOSPC', 'ENOSPC: no space left on device, write');
    const err = normaliseOpError(cause);
    expect(err.code).toBe('SEEDWIRE_NO_SPACE');
    expect(err.message).toMatch(/^ENOSPC: no space left on device, write \(the file system is full/);
    expect(err.cause).toBe(cause);
    expect(normaliseOpError(errnoError('EDQUOT', 'EDQUOT: disk quota exceeded, write')).code).toBe('SEEDWIRE_NO_SPACE');
    expect(makeErrorFrame('c1', cause)).toMatchObject({ t: 'error', id: 'c1', code: 'SEEDWIRE_NO_SPACE' });
  });

  it('leaves other errors as they were: a SeedwireError keeps its code, any other errno is internal', () => {
    expect(normaliseOpError(new SeedwireError('SEEDWIRE_PATH_ESCAPE', 'x')).code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(normaliseOpError(errnoError('EACCES', 'EACCES: permission denied')).code).toBe('SEEDWIRE_INTERNAL');
    expect(normaliseOpError('plain').code).toBe('SEEDWIRE_INTERNAL');
  });
});
