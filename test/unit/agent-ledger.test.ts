import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LEDGER_FILE, Ledger } from '../../agent/dispatch/ledger.js';
import { OutputChannel, splitUtf8 } from '../../agent/dispatch/output.js';
import type { Frame } from '../../shared/frames.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'seedwire-ledger-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const result = (id: string) => ({ t: 'result' as const, id, result: { ok: true }, exitCode: null, durationMs: 1 });

describe('idempotency ledger', () => {
  it('keeps outcomes across reopen until acked, and remembers acked ids', () => {
    const dir = tempDir();
    const ledger = Ledger.open(dir);
    ledger.markRunning('c1', 'hostname');
    ledger.complete('c1', result('c1'));
    ledger.markRunning('c2', 'exec');
    ledger.complete('c2', result('c2'));
    ledger.ack(['c1']);

    const reopened = Ledger.open(dir);
    expect(reopened.pendingOutcomes().map((o) => o.id)).toEqual(['c2']);
    expect(reopened.get('c1')).toMatchObject({ state: 'done', acked: true });
  });

  it('turns a call that was running when the process died into SEEDWIRE_LOST, never a re-run', () => {
    const dir = tempDir();
    Ledger.open(dir).markRunning('c9', 'mysql-stop');
    const reopened = Ledger.open(dir);
    expect(reopened.get('c9')).toMatchObject({ state: 'done', frame: { t: 'error', id: 'c9', code: 'SEEDWIRE_LOST' } });
    expect(reopened.pendingOutcomes().map((o) => o.id)).toEqual(['c9']);
  });

  it('is bounded: acked entries go first, then the oldest undelivered, running ones never', () => {
    const ledger = Ledger.open(tempDir(), { maxEntries: 3 });
    ledger.markRunning('run', 'exec');
    for (const id of ['a', 'b', 'c']) {
      ledger.markRunning(id, 'hostname');
      ledger.complete(id, result(id));
    }
    expect(ledger.size).toBe(3);
    expect(ledger.get('run')?.state).toBe('running');
    expect(ledger.get('a')).toBeUndefined();
    ledger.ack(['c']);
    ledger.markRunning('d', 'hostname');
    expect(ledger.get('c')).toBeUndefined();
    expect(ledger.get('b')).toBeDefined();
  });

  it('starts empty on a corrupt file and says so', () => {
    const dir = tempDir();
    writeFileSync(join(dir, LEDGER_FILE), '{not json');
    let heard = false;
    const ledger = Ledger.open(dir, { onCorrupt: () => (heard = true) });
    expect(heard).toBe(true);
    expect(ledger.size).toBe(0);
    expect(readFileSync(join(dir, LEDGER_FILE), 'utf8')).toBe('');
  });

  it('appends one line per change, replays them on open, skips a torn last line, and compacts', () => {
    const dir = tempDir();
    const ledger = Ledger.open(dir, { maxEntries: 10 });
    ledger.markRunning('a', 'hostname');
    ledger.complete('a', { t: 'result', id: 'a', result: { hostname: 'h' }, durationMs: 1 });
    ledger.ack(['a']);
    ledger.markRunning('b', 'exec');
    const lines = readFileSync(join(dir, LEDGER_FILE), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    writeFileSync(join(dir, LEDGER_FILE), `${lines.join('\n')}\n{"k":"entry","id":"c","op`, { flag: 'w' });
    let torn = 0;
    const reopened = Ledger.open(dir, { maxEntries: 10, onCorrupt: () => (torn += 1) });
    expect(torn).toBe(1);
    expect(reopened.get('a')).toMatchObject({ state: 'done', acked: true });
    expect(reopened.get('b')).toMatchObject({ state: 'done', frame: { code: 'SEEDWIRE_LOST' } });
    expect(reopened.pendingOutcomes().map((o) => o.id)).toEqual(['b']);
    // compacted on open: one line per entry kept
    expect(readFileSync(join(dir, LEDGER_FILE), 'utf8').trim().split('\n')).toHaveLength(2);
    for (let i = 0; i < 200; i += 1) {
      reopened.markRunning(`x${i}`, 'hostname');
      reopened.complete(`x${i}`, { t: 'result', id: `x${i}`, result: {}, durationMs: 1 });
      reopened.ack([`x${i}`]);
    }
    expect(reopened.size).toBeLessThanOrEqual(10);
    expect(readFileSync(join(dir, LEDGER_FILE), 'utf8').trim().split('\n').length).toBeLessThanOrEqual(64 + 3);
    // Appends after a compaction land in the file that replaced the old one (its descriptor is reopened).
    reopened.markRunning('after-compaction', 'hostname');
    reopened.close();
    const again = Ledger.open(dir, { maxEntries: 10 });
    expect(again.get('x199')).toMatchObject({ state: 'done', acked: true });
    expect(again.get('after-compaction')).toMatchObject({ state: 'done', frame: { code: 'SEEDWIRE_LOST' } });
    again.close();
  });
});

describe('output channel', () => {
  it('splits on UTF-8 character boundaries within the byte limit', () => {
    const pieces = splitUtf8('aé€😀'.repeat(50), 7);
    expect(pieces.every((p) => p.bytes <= 7 && Buffer.byteLength(p.data) === p.bytes)).toBe(true);
    expect(pieces.map((p) => p.data).join('')).toBe('aé€😀'.repeat(50));
  });

  it('numbers sent frames, buffers while down, and reports dropped bytes as a gap', () => {
    const sent: Frame[] = [];
    let up = true;
    const send = (frame: Frame): boolean => (up ? (sent.push(frame), true) : false);
    const channel = new OutputChannel('c1', 10, 4);
    channel.write('stdout', 'abcdef', send);
    up = false;
    channel.write('stdout', '0123456789ABCDEF', send);
    expect(channel.buffered).toBeLessThanOrEqual(10);
    up = true;
    expect(channel.flush(send)).toBe(true);
    const frames = sent as Array<Extract<Frame, { t: 'output' }>>;
    expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i));
    expect(frames.slice(0, 2).map((f) => f.data).join('')).toBe('abcdef');
    const dropped = 16 - frames.slice(2).reduce((n, f) => n + f.data.length, 0);
    expect(frames[2]?.gap).toBe(dropped);
    expect(frames.slice(3).every((f) => f.gap === undefined)).toBe(true);
    expect(frames.map((f) => f.data).join('')).toBe('abcdef' + '0123456789ABCDEF'.slice(dropped));
  });
});
