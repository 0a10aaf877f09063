/**
 * The operation contract of shared/ops.ts: the agent's handlers are exactly the ops the contract
 * names, each with the contract's params schema, and the controller's checks turn an answer of the
 * wrong shape into SEEDWIRE_PROTOCOL naming the op and the field.
 */
import { describe, expect, it } from 'vitest';
import { buildOpRegistry } from '../../agent/ops/registry.js';
import { ALL_OP_PARAMS, ALL_OP_RESULTS, OP_PROGRESS, type OpName } from '../../shared/ops.js';
import { checkedProgress, checkResult } from '../../server-stub/hub/contract.js';

describe('the agent implements the contract', () => {
  const registry = buildOpRegistry();

  it('has one handler for every op the contract names, and no other', () => {
    expect([...registry.keys()].sort()).toEqual(Object.keys(ALL_OP_PARAMS).sort());
    expect(Object.keys(ALL_OP_RESULTS).sort()).toEqual(Object.keys(ALL_OP_PARAMS).sort());
  });

  it("validates each op's params with the contract's own schema", () => {
    for (const [name, op] of registry) expect(op.params, name).toBe(ALL_OP_PARAMS[name as OpName]);
  });
});

describe('checkResult', () => {
  it('passes a result of the right shape through, typed', () => {
    const status = checkResult('db-1', 'mysql-status', { running: true });
    expect(status.running).toBe(true);
    const sent = checkResult('db-1', 'seed-send', { files: 3, bytes: 10, digest: 'ab', binlog: { file: 'mysql-bin.000002', position: 4 } });
    expect(sent.binlog?.position).toBe(4);
  });

  it('drops fields a newer agent may add', () => {
    expect(checkResult('db-1', 'hostname', { hostname: 'h', uptime: 5 })).toEqual({ hostname: 'h' });
  });

  it('refuses a wrong shape with SEEDWIRE_PROTOCOL naming the agent, the op and the field', () => {
    expect(() => checkResult('db-1', 'mysql-status', { running: 'yes' })).toThrow(
      expect.objectContaining({ code: 'SEEDWIRE_PROTOCOL', message: expect.stringMatching(/agent db-1 answered 'mysql-status' with a bad result at running: expected boolean/) }),
    );
    expect(() => checkResult('db-1', 'seed-send', { files: 1, bytes: 1, digest: 'x', binlog: { file: 'b', position: -1 } })).toThrow(
      expect.objectContaining({ code: 'SEEDWIRE_PROTOCOL', message: expect.stringContaining('at binlog.position') }),
    );
    expect(() => checkResult('db-1', 'snapshots', [{ name: 's' }])).toThrow(expect.objectContaining({ message: expect.stringContaining('at [0].path') }));
    expect(() => checkResult('db-1', 'seed-receive', null)).toThrow(expect.objectContaining({ message: expect.stringContaining('at result') }));
  });
});

describe('checkedProgress', () => {
  it('delivers progress of the op’s shape and drops the rest', () => {
    const seen: unknown[] = [];
    const bad: string[] = [];
    const listener = checkedProgress('seed-receive', (data) => seen.push(data), (field) => bad.push(field));
    listener({ ready: true, offset: 0 });
    listener({ committed: 10, received: 12 });
    listener({ committed: 'ten', received: 12 });
    expect(seen).toEqual([{ ready: true, offset: 0 }, { committed: 10, received: 12 }]);
    expect(bad).toHaveLength(1);
  });

  it('knows which ops report progress', () => {
    expect(Object.keys(OP_PROGRESS).sort()).toEqual(['seed-receive', 'seed-send']);
    const bad: string[] = [];
    checkedProgress('hostname', () => {}, (field) => bad.push(field))({ anything: 1 });
    expect(bad).toEqual(['progress']);
  });
});
