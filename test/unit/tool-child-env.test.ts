import { afterEach, describe, expect, it } from 'vitest';
import { startToolChild } from '../../agent/transfer/child.js';

const saved = process.env['SEEDWIRE_AGENT_TOKEN'];
afterEach(() => {
  if (saved === undefined) delete process.env['SEEDWIRE_AGENT_TOKEN'];
  else process.env['SEEDWIRE_AGENT_TOKEN'] = saved;
});

describe('tool children (backup tools, extractors)', () => {
  it('do not inherit the agent token from the environment, and keep the rest of it', async () => {
    process.env['SEEDWIRE_AGENT_TOKEN'] = 'secret-token-for-the-test';
    const child = startToolChild({ file: 'env', args: [], stdin: 'ignore', killGraceMs: 1_000 });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const exit = await child.exited;
    expect(exit.code).toBe(0);
    const env = Buffer.concat(chunks).toString('utf8');
    expect(env).not.toContain('secret-token-for-the-test');
    expect(env).toMatch(/^PATH=/m);
  });
});
