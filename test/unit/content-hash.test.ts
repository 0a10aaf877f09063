/**
 * The content hash of a tree seed (agent/transfer/content-hash.ts): both kinds give their
 * published test vectors; the tree writer checks a trailer with the seed's kind and refuses the
 * other's; a receive checkpoint stored with one kind is not resumed by an attempt with the other.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../agent/transfer/checkpoint.js';
import { blake3Available, createContentHash } from '../../agent/transfer/content-hash.js';
import { TreeWriter } from '../../agent/transfer/tree-writer.js';
import { rejectionOf } from '../helpers/checks.js';

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'seedwire-content-hash-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const hex = (name: 'sha256' | 'blake3', ...parts: Buffer[]): string => {
  const hash = createContentHash(name);
  for (const part of parts) hash.update(part);
  return hash.digest().toString('hex');
};

describe('content hash', () => {
  it('BLAKE3 loads here (the addon is a dependency) and matches its published vectors, fed whole or in pieces', () => {
    expect(blake3Available()).toBe(true);
    expect(hex('blake3')).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
    expect(hex('blake3', Buffer.from('abc'))).toBe('6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85');
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
    expect(hex('blake3', big.subarray(0, 1000), big.subarray(1000, 2_000_000), big.subarray(2_000_000))).toBe(hex('blake3', big));
  });

  it('SHA-256 is Node’s own', () => {
    const data = Buffer.from('seedwire');
    expect(hex('sha256', data)).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('the tree writer checks a file against a BLAKE3 trailer and refuses a SHA-256 one for the same bytes', async () => {
    const root = join(work, 'datadir');
    await mkdir(root);
    const w = new TreeWriter(root, { contentHash: 'blake3' });
    const content = Buffer.from('InnoDB page');
    const header = { type: 'file' as const, path: 'ibdata1', mode: 0o640, mtimeMs: 1_600_000_000_000, size: content.length };
    await w.writeEntry(header, 0);
    await w.writeData(content);
    const entry = await w.completeFile(Buffer.from(hex('blake3', content), 'hex'));
    expect(entry.sha256).toBe(hex('blake3', content));
    expect(await readFile(join(root, 'ibdata1'))).toEqual(content);

    await w.writeEntry({ ...header, path: 'ibdata2' }, 100);
    await w.writeData(content);
    const error = await rejectionOf(w.completeFile(createHash('sha256').update(content).digest()));
    expect(error).toMatchObject({ code: 'SEEDWIRE_VERIFY_FAILED' });
    await w.close();
  });

  it('a receive point stored with SHA-256 is not resumed by a BLAKE3 attempt (it starts over, saying why), and is by a SHA-256 one', async () => {
    const first = await openCheckpoint({ stateDir: work, seedId: 'seed-1', resume: false });
    await first.commit({ committed: 50, current: null }, Promise.resolve());
    await first.close();

    const blake = await openCheckpoint({ stateDir: work, seedId: 'seed-1', resume: true, contentHash: 'blake3' });
    expect(blake.resumed).toBeNull();
    expect(blake.discarded).toMatch(/hashed with sha256 and this attempt uses blake3/);
    await blake.commit({ committed: 70, current: null }, Promise.resolve());
    await blake.close();

    const again = await openCheckpoint({ stateDir: work, seedId: 'seed-1', resume: true, contentHash: 'blake3' });
    expect(again.resumed?.committed).toBe(70);
    await again.close();
    const sha = await openCheckpoint({ stateDir: work, seedId: 'seed-1', resume: true });
    expect(sha.resumed).toBeNull();
    expect(sha.discarded).toMatch(/hashed with blake3 and this attempt uses sha256/);
    await sha.close();
  });
});
