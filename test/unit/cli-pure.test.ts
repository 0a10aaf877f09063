/** The CLI's and the API client's pure parts: SSE parsing, argument values, exit codes, the report. */
import { describe, expect, it } from 'vitest';
import { ApiError, type Operation, type SeedView } from '../../client/api.js';
import { SseParser } from '../../client/sse.js';
import { exitCodeOfOperation } from '../../cli/commands/ops.js';
import { exitCodeOf, CliError } from '../../cli/exit.js';
import { formatBytes, formatDuration, renderTable } from '../../cli/format.js';
import { parseParams, parseRate } from '../../cli/params.js';
import { changeMasterStatement, renderSeedReport, renderSteps } from '../../cli/report.js';
import { resolveControllerUrl, resolveToken } from '../../cli/config.js';

describe('SseParser', () => {
  it('parses events as /api/events sends them, across any chunking', () => {
    const text =
      'retry: 2000\n\n' +
      ': heartbeat\n\n' +
      'id: 7\nevent: seed\ndata: {"seq":7,"type":"seed","at":"t","data":{"id":"s1"}}\n\n' +
      'id: 9\r\nevent: gap\r\ndata: {"seq":9,"type":"gap","at":"t","data":{"from":8,"to":9}}\r\n\r\n';
    const whole = new SseParser().push(text);
    expect(whole).toEqual([
      { id: '7', event: 'seed', data: '{"seq":7,"type":"seed","at":"t","data":{"id":"s1"}}' },
      { id: '9', event: 'gap', data: '{"seq":9,"type":"gap","at":"t","data":{"from":8,"to":9}}' },
    ]);
    for (const size of [1, 2, 3, 5, 13]) {
      const parser = new SseParser();
      const out = [];
      for (let i = 0; i < text.length; i += size) out.push(...parser.push(text.slice(i, i + size)));
      expect(out, `chunks of ${size}`).toEqual(whole);
    }
  });

  it('joins multi-line data, keeps the last id, and defaults the event name', () => {
    expect(new SseParser().push('id: 1\n\ndata: a\ndata:b\n\n')).toEqual([{ id: '1', event: 'message', data: 'a\nb' }]);
  });
});

describe('argument values', () => {
  it('--max-rate takes K/M/G as powers of 1024 and refuses less than 64K', () => {
    expect(parseRate('50M')).toBe(50 * 1024 * 1024);
    expect(parseRate('512k')).toBe(512 * 1024);
    expect(parseRate('1.5GiB/s')).toBe(1.5 * 1024 ** 3);
    expect(parseRate('65536')).toBe(65536);
    expect(() => parseRate('1K')).toThrow(/at least 64K/);
    expect(() => parseRate('fast')).toThrow(/--max-rate/);
  });

  it('--param values follow the operation schema: numbers where it wants numbers, strings otherwise', () => {
    expect(parseParams('mysql-error-log-tail', ['lines=50'])).toEqual({ lines: 50 });
    expect(parseParams('create-snapshot', ['name=123'])).toEqual({ name: '123' });
    expect(parseParams('exec', ['command=echo a=b'])).toEqual({ command: 'echo a=b' });
    expect(parseParams('whatever', ['n:=[1,2]', 'x=1'])).toEqual({ n: [1, 2], x: '1' });
    expect(() => parseParams('exec', ['nonsense'])).toThrow(/KEY=VALUE/);
    expect(() => parseParams('exec', ['n:={'])).toThrow(/not JSON/);
  });
});

describe('where the controller and the token come from', () => {
  it('flag, then environment, then the default; bad URLs are usage errors', () => {
    expect(resolveControllerUrl({}, {})).toBe('http://127.0.0.1:7070');
    expect(resolveControllerUrl({}, { SEEDWIRE_CONTROLLER: 'https://ctl:8443/' })).toBe('https://ctl:8443');
    expect(resolveControllerUrl({ controller: 'http://a:1' }, { SEEDWIRE_CONTROLLER: 'http://b:2' })).toBe('http://a:1');
    expect(() => resolveControllerUrl({ controller: 'ws://a:1' }, {})).toThrow(/--controller: expected an http/);
  });

  it('a missing token file named by flag is bad usage (2); no token anywhere is unauthorised (3)', () => {
    const given = (() => {
      try {
        resolveToken({ tokenFile: '/nonexistent/token' }, {}, '/');
        return null;
      } catch (error) {
        return error;
      }
    })();
    expect(exitCodeOf(given)).toBe(2);
    expect(resolveToken({}, { SEEDWIRE_ADMIN_TOKEN: ' abc \n' }, '/')).toBe('abc');
    let none: unknown = null;
    try {
      resolveToken({}, { SEEDWIRE_DATA_DIR: '/nonexistent' }, '/');
    } catch (error) {
      none = error;
    }
    expect(none).toBeInstanceOf(CliError);
    expect(exitCodeOf(none)).toBe(3);
  });
});

describe('exit codes', () => {
  it('maps API errors: unreachable and 401 → 3, 409 → 4, other 4xx → 2, 5xx → 1', () => {
    expect(exitCodeOf(new ApiError(0, 'SEEDWIRE_UNREACHABLE', 'down'))).toBe(3);
    expect(exitCodeOf(new ApiError(401, 'SEEDWIRE_AUTH', 'no'))).toBe(3);
    expect(exitCodeOf(new ApiError(502, 'HTTP_502', 'gateway'))).toBe(3);
    expect(exitCodeOf(new ApiError(409, 'SEEDWIRE_PRECHECK_FAILED', 'no'))).toBe(4);
    expect(exitCodeOf(new ApiError(404, 'SEEDWIRE_AGENT_UNKNOWN', 'who'))).toBe(2);
    expect(exitCodeOf(new ApiError(500, 'SEEDWIRE_INTERNAL', 'bug'))).toBe(1);
    const future = new ApiError(409, 'SEEDWIRE_SOMETHING_NEW', 'newer controller');
    expect(future.apiCode).toBe('SEEDWIRE_SOMETHING_NEW');
    expect(future.status).toBe(409);
  });

  it("an operation exits with its command's code, 4 when refused, 5 otherwise when it failed", () => {
    const base = { id: 'o', agentId: 'a', op: 'exec', params: {}, createdAt: '', endedAt: '', result: null, outputTail: '', actor: 'admin', seedId: null };
    const opOf = (o: Partial<Operation>): Operation => ({ ...base, state: 'succeeded', error: null, exitCode: null, ...o });
    expect(exitCodeOfOperation(opOf({}))).toBe(0);
    expect(exitCodeOfOperation(opOf({ exitCode: 7 }))).toBe(7);
    expect(exitCodeOfOperation(opOf({ state: 'failed', exitCode: 3, error: { code: 'SEEDWIRE_COMMAND_FAILED', message: 'x' } }))).toBe(3);
    expect(exitCodeOfOperation(opOf({ state: 'failed', error: { code: 'SEEDWIRE_OP_REFUSED', message: 'x' } }))).toBe(4);
    expect(exitCodeOfOperation(opOf({ state: 'canceled', error: { code: 'SEEDWIRE_CANCELED', message: 'x' } }))).toBe(5);
  });
});

describe('the seed report', () => {
  it('writes the CHANGE MASTER statement with the source host and port, quoting what needs it', () => {
    expect(changeMasterStatement({ file: 'mysql-bin.000002', position: 4321 }, { host: "db'1", port: 3307 })).toBe(
      "CHANGE MASTER TO MASTER_HOST='db\\'1', MASTER_PORT=3307, MASTER_USER='<replication user>', MASTER_PASSWORD='<password>', MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=4321;",
    );
  });

  it('prints the stages, the result and the coordinates of a finished seed', () => {
    const seed = {
      id: 's1', source: 'a', target: 'b', method: 'cold', compression: 'auto', effectiveCompression: 'none', startTarget: true, maxBytesPerSec: null,
      state: 'succeeded', stage: 'cleanup-source', bytesTotal: 2048, bytesDone: 2048, bytesPerSec: null, etaSeconds: null,
      createdAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:01:05.000Z', error: null, attempts: 1,
      result: { files: 2, bytes: 2048, digest: 'abc', binlog: { file: 'bin.000001', position: 99, gtid: '0-1-5' } },
      stages: [{ name: 'transfer', state: 'succeeded', startedAt: '2026-01-01T00:00:01.000Z', endedAt: '2026-01-01T00:00:03.000Z', message: '2 files' }],
    } as SeedView;
    const text = renderSeedReport(seed, null, Date.parse('2026-01-01T00:02:00Z'));
    expect(text).toContain('seed s1: cold seed a → b, succeeded after 1m05s');
    expect(text).toMatch(/^transfer\s+succeeded\s+2026-01-01 00:00:01\s+2s\s+2 files$/m);
    expect(text).toContain('copied 2.00 KiB in 2 files, 1 attempt, compression none');
    expect(text).toContain('replication coordinates: file bin.000001, position 99, GTID 0-1-5');
    expect(text).toContain("MASTER_HOST='a', MASTER_PORT=3306");
    expect(text).toContain("SET GLOBAL gtid_slave_pos = '0-1-5'");
  });

  it("lists a seed's steps and the last lines of a failed step's output", () => {
    const step = (o: Partial<Operation>): Operation => ({
      id: 's1.x', agentId: 'b', op: 'mysql-status', params: {}, state: 'succeeded', createdAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:02.000Z',
      result: null, error: null, exitCode: null, outputTail: '', actor: 'seed:s1', seedId: 's1', ...o,
    });
    const text = renderSteps([
      step({ id: 's1.prepare-target', op: 'seed-prepare-target' }),
      step({ id: 's1.finalize-target', op: 'seed-finalize-target', state: 'failed', exitCode: 1, outputTail: '$ mariabackup --prepare\n[00] FATAL ERROR: no redo log\n' }),
    ], Date.parse('2026-01-01T00:02:00Z'));
    expect(text).toMatch(/^STEP \(OPERATION ID\)\s+OP\s+AGENT\s+STATE\s+EXIT\s+TOOK$/m);
    expect(text).toMatch(/^s1\.prepare-target\s+seed-prepare-target\s+b\s+succeeded\s+-\s+2s$/m);
    expect(text).toMatch(/^s1\.finalize-target\s+seed-finalize-target\s+b\s+failed\s+1\s+2s$/m);
    expect(text).toContain('output of s1.finalize-target (last lines; all of it: GET /api/operations/s1.finalize-target/output):\n  $ mariabackup --prepare\n  [00] FATAL ERROR: no redo log\n');
    expect(renderSteps([], 0)).toBe('steps: none recorded\n');
  });

  it('formats sizes, durations and borderless tables', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(null)).toBe('-');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(renderTable(['id', 'state'], [['a', 'ok'], ['long-id', 'failed']])).toBe('ID       STATE\na        ok\nlong-id  failed\n');
  });
});
