/** The tree writer (agent/transfer/tree-writer.ts) against a temp dir: path refusals, modes, symlinks, checksums, resume. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DirHeader, FileHeader, RangeHeader, SymlinkHeader } from '../../agent/transfer/format.js';
import { TreeWriter } from '../../agent/transfer/tree-writer.js';
import { rejectionOf } from '../helpers/checks.js';
import { INCOMPLETE_MARKER } from '../../shared/ops.js';

let work: string;
let root: string;
const writers: TreeWriter[] = [];

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'seedwire-tree-writer-'));
  root = join(work, 'datadir');
  await mkdir(root);
});

afterEach(async () => {
  await Promise.all(writers.splice(0).map((w) => w.close()));
  await rm(work, { recursive: true, force: true });
});

function writer(options: { allowExternalSymlinks?: boolean } = {}): TreeWriter {
  const w = new TreeWriter(root, options);
  writers.push(w);
  return w;
}

const sha = (data: string | Buffer): Buffer => createHash('sha256').update(data).digest();
const file = (path: string, size: number, mode = 0o640): FileHeader => ({ type: 'file', path, mode, mtimeMs: 1_600_000_000_000, size });
const dir = (path: string, mode = 0o755): DirHeader => ({ type: 'dir', path, mode, mtimeMs: 0 });
const link = (path: string, target: string): SymlinkHeader => ({ type: 'symlink', path, target, mode: 0o777, mtimeMs: 0 });


async function writeWhole(w: TreeWriter, path: string, content: string, mode?: number): Promise<void> {
  await w.writeEntry(file(path, content.length, mode), 0);
  await w.writeData(Buffer.from(content));
  await w.completeFile(sha(content));
}

describe('tree writer', () => {
  it('writes files with their permission bits and mtime, checking each against its trailer', async () => {
    const w = writer();
    await w.writeEntry(dir('db1', 0o4750), 0);
    await w.writeEntry(file('db1/t.ibd', 11, 0o6755), 100);
    expect(w.filePoint).toEqual({ path: 'db1/t.ibd', mode: 0o6755, mtimeMs: 1_600_000_000_000, size: 11, dataStart: 100, position: 0 });
    await w.writeData(Buffer.from('hello '));
    await w.writeData(Buffer.from('world'));
    expect(w.filePoint?.position).toBe(11);
    const entry = await w.completeFile(sha('hello world'));
    expect(entry).toEqual({ path: 'db1/t.ibd', size: 11, sha256: sha('hello world').toString('hex') });
    expect(w.filePoint).toBeNull();
    expect(w.unsyncedFiles).toBe(1);
    await w.flush();
    expect(w.unsyncedFiles).toBe(0);
    expect(await readFile(join(root, 'db1/t.ibd'), 'utf8')).toBe('hello world');
    const st = await lstat(join(root, 'db1/t.ibd'));
    expect(st.mode & 0o7777).toBe(0o755); // setuid and setgid never come from a peer
    expect(Math.round(st.mtimeMs)).toBe(1_600_000_000_000);
    expect((await lstat(join(root, 'db1'))).mode & 0o7777).toBe(0o750);
  });

  it('gathers small pieces into few writes; a flush writes what was gathered, so a resume point after it covers every byte handed over', async () => {
    const w = writer();
    const pieces = Array.from({ length: 600 }, (_, i) => Buffer.from(`piece ${String(i).padStart(4, '0')};`));
    const content = Buffer.concat(pieces);
    await w.writeEntry(file('db1.ibd', content.length), 0);
    const half = pieces.slice(0, 300);
    for (const piece of half) await w.writeData(piece);
    await w.flush();
    const point = w.filePoint!;
    expect(point.position).toBe(Buffer.concat(half).length);
    // durable and on disk up to the point, while the file is still open and more may follow
    expect((await readFile(join(root, 'db1.ibd'))).equals(Buffer.concat(half))).toBe(true);
    for (const piece of pieces.slice(300)) await w.writeData(piece);
    await w.completeFile(sha(content));
    expect((await readFile(join(root, 'db1.ibd'))).equals(content)).toBe(true);
  });

  it('refuses a file whose data does not hash to its trailer, naming it', async () => {
    const w = writer();
    await w.writeEntry(file('x.ibd', 4), 0);
    await w.writeData(Buffer.from('evil'));
    const error = await rejectionOf(w.completeFile(sha('good')));
    expect(error.code).toBe('SEEDWIRE_VERIFY_FAILED');
    expect(error.message).toMatch(/^checksum mismatch for x\.ibd/);
  });

  for (const [path, why] of [
    ['../escaped', "a '..' component"],
    ['/etc/passwd', 'it is absolute'],
    ['db/./t', "a '.' component"],
    ['db//t', 'an empty component'],
    ['auto.cnf', 'a name a seed never carries'],
    [`db/${INCOMPLETE_MARKER}`, 'a name a seed never carries'],
    ['bad\nname', 'a control character'],
  ] as const) {
    it(`refuses the path ${JSON.stringify(path)} (${why}) before touching anything`, async () => {
      const w = writer();
      for (const header of [file(path, 1), dir(path), link(path, 'x')]) {
        const error = await rejectionOf(w.writeEntry(header, 0));
        expect(error.code).toBe('SEEDWIRE_PATH_ESCAPE');
        expect(error.message).toContain(why);
      }
      expect(existsSync(join(work, 'escaped'))).toBe(false);
    });
  }

  it('never writes through a symlink, whether a parent or the file itself', async () => {
    const outside = join(work, 'outside');
    await mkdir(outside);
    await symlink(outside, join(root, 'linked-dir'));
    await writeFile(join(outside, 'target'), 'keep');
    await symlink(join(outside, 'target'), join(root, 'linked-file'));
    const w = writer({ allowExternalSymlinks: true });
    expect((await rejectionOf(w.writeEntry(file('linked-dir/x', 1), 0))).message).toMatch(/its parent linked-dir is a symlink/);
    expect((await rejectionOf(w.writeEntry(file('linked-file', 1), 0))).message).toMatch(/it is a symlink; refusing to write through it/);
    expect((await rejectionOf(w.writeEntry(dir('linked-dir', 0o755), 0))).message).toMatch(/a symlink where a directory is expected/);
    expect(await readFile(join(outside, 'target'), 'utf8')).toBe('keep');
    expect(existsSync(join(outside, 'x'))).toBe(false);
  });

  it('creates symlinks inside the datadir, refuses ones leading out unless allowed, and replays one on resume', async () => {
    const w = writer();
    await w.writeEntry(link('db/link', '../ibdata1'), 0);
    expect(await readlink(join(root, 'db/link'))).toBe('../ibdata1');
    await w.writeEntry(link('db/link', '../ibdata1'), 0); // a resume replaying it
    const out = await rejectionOf(w.writeEntry(link('db/out', '../../etc'), 0));
    expect(out.code).toBe('SEEDWIRE_PATH_ESCAPE');
    expect(out.message).toMatch(/target resolves outside the datadir/);
    expect((await rejectionOf(w.writeEntry(link('abs', '/var/lib/other'), 0))).code).toBe('SEEDWIRE_PATH_ESCAPE');
    await writer({ allowExternalSymlinks: true }).writeEntry(link('tablespace', '/srv/ts1'), 0);
    expect(await readlink(join(root, 'tablespace'))).toBe('/srv/ts1');
    await w.writeEntry(dir('d', 0o755), 0);
    expect((await rejectionOf(w.writeEntry(link('d', 'x'), 0))).code).toBe('SEEDWIRE_BAD_FRAME');
  });

  it('resumes inside a file: cut to the stored length, the prefix re-hashed so the trailer covers all of it', async () => {
    const first = writer();
    await first.writeEntry(file('big', 10), 40);
    await first.writeData(Buffer.from('0123456'));
    await first.flush();
    const point = first.filePoint!;
    expect(point).toMatchObject({ dataStart: 40, position: 7 });
    await first.close();

    const again = writer();
    const header = await again.resumeFile({ ...point, position: 4 }); // the stored point was earlier than what reached disk
    expect(header).toEqual(file('big', 10));
    expect(await readFile(join(root, 'big'), 'utf8')).toBe('0123');
    await again.writeData(Buffer.from('456789'));
    expect(await again.completeFile(sha('0123456789'))).toMatchObject({ path: 'big', size: 10 });
    await again.flush();
    expect(await readFile(join(root, 'big'), 'utf8')).toBe('0123456789');
  });

  it('refuses a resume point past the file or past what the file holds', async () => {
    await writeWhole(writer(), 'short', 'abc');
    const w = writer();
    expect((await rejectionOf(w.resumeFile({ path: 'short', mode: 0o640, mtimeMs: 0, size: 10, dataStart: 0, position: 11 }))).message).toMatch(/past its size/);
    expect((await rejectionOf(w.resumeFile({ path: 'short', mode: 0o640, mtimeMs: 0, size: 10, dataStart: 0, position: 8 }))).message).toMatch(/shorter than its resume point/);
  });
});

describe('range records (a lane\'s part of a large file)', () => {
  const range = (path: string, size: number, offset: number, length: number): RangeHeader => ({ type: 'range', path, mode: 0o640, mtimeMs: 1_600_000_000_000, size, offset, length });
  const content = Buffer.from('0123456789abcdefghij');

  async function writeRange(w: TreeWriter, header: RangeHeader): Promise<void> {
    await w.writeEntry(header, 0);
    const part = content.subarray(header.offset, header.offset + header.length);
    await w.writeData(part);
    await w.completeFile(sha(part));
  }

  it('writes ranges in any order without truncating what other lanes wrote', async () => {
    const lanes = [writer(), writer()];
    await writeRange(lanes[1]!, range('ibdata1', 20, 12, 8));
    await writeRange(lanes[0]!, range('ibdata1', 20, 0, 6));
    await writeRange(lanes[1]!, range('ibdata1', 20, 6, 6));
    await Promise.all(lanes.map((w) => w.flush()));
    expect(await readFile(join(root, 'ibdata1'))).toEqual(content);
    expect(((await lstat(join(root, 'ibdata1'))).mode & 0o777).toString(8)).toBe('640');
  });

  it('checks each range against its own trailer, naming the range', async () => {
    const w = writer();
    await w.writeEntry(range('ibdata1', 20, 6, 6), 0);
    await w.writeData(Buffer.from('XXXXXX'));
    const error = await rejectionOf(w.completeFile(sha(content.subarray(6, 12))));
    expect(error).toMatchObject({ code: 'SEEDWIRE_VERIFY_FAILED' });
    expect(error.message).toContain('checksum mismatch for ibdata1 (bytes 6+6)');
  });

  it('never writes a range through a symlink, nor onto the marker', async () => {
    await writeFile(join(work, 'outside'), 'keep');
    await symlink(join(work, 'outside'), join(root, 'ibdata1'));
    const w = writer({ allowExternalSymlinks: true });
    expect(await rejectionOf(w.writeEntry(range('ibdata1', 20, 0, 6), 0))).toMatchObject({ code: 'SEEDWIRE_PATH_ESCAPE' });
    expect(await rejectionOf(w.writeEntry(range(INCOMPLETE_MARKER, 20, 0, 6), 0))).toMatchObject({ code: 'SEEDWIRE_PATH_ESCAPE' });
    expect(await readFile(join(work, 'outside'), 'utf8')).toBe('keep');
  });

  it('resumes inside a range: the stored part re-hashed, nothing after it cut', async () => {
    const first = writer();
    await writeRange(first, range('ibdata1', 20, 12, 8));
    await first.writeEntry(range('ibdata1', 20, 0, 12), 0);
    await first.writeData(content.subarray(0, 5));
    const point = first.filePoint!;
    await first.flush();
    await first.close();
    const again = writer();
    const header = await again.resumeFile(point);
    expect(header).toMatchObject({ type: 'range', offset: 0, length: 12 });
    await again.writeData(content.subarray(5, 12));
    await again.completeFile(sha(content.subarray(0, 12)));
    await again.flush();
    expect(await readFile(join(root, 'ibdata1'))).toEqual(content);
  });
});
