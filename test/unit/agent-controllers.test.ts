import { describe, expect, it } from 'vitest';
import { ControllerList } from '../../agent/connection/controllers.js';

const C1 = 'ws://c1/agent';
const C2 = 'ws://c2/agent';
const C3 = 'ws://c3/agent';

/** A clock the test moves by hand. */
function manualClock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('ControllerList', () => {
  it('starts with the first URL and moves down the list on every ending, wrapping round', () => {
    const list = new ControllerList([C1, C2, C3]);
    const seen = [list.current];
    for (let i = 0; i < 4; i++) {
      list.advance();
      seen.push(list.current);
    }
    expect(seen).toEqual([C1, C2, C3, C1, C2]);
    expect(list.position).toBe(1);
  });

  it('a list of one always dials its one URL', () => {
    const list = new ControllerList([C1]);
    list.advance();
    list.advance();
    expect(list.current).toBe(C1);
    expect(list.heldFor()).toBe(0);
  });

  it('keeps a Retry-After for the controller that sent it, not for the others', () => {
    const clock = manualClock();
    const list = new ControllerList([C1, C2], clock.now);
    list.holdOff(5_000);
    expect(list.heldFor()).toBe(5_000);
    list.advance();
    expect(list.current).toBe(C2);
    expect(list.heldFor()).toBe(0);
    clock.advance(1_200);
    list.advance();
    expect(list.current).toBe(C1);
    expect(list.heldFor()).toBe(3_800);
    clock.advance(3_800);
    expect(list.heldFor()).toBe(0);
  });

  it('a shorter Retry-After never shortens a longer one still running', () => {
    const clock = manualClock();
    const list = new ControllerList([C1], clock.now);
    list.holdOff(10_000);
    list.holdOff(1_000);
    expect(list.heldFor()).toBe(10_000);
  });

  it('finds a move target only among its own URLs, compared after normalising', () => {
    const list = new ControllerList(['wss://Ctl-1.Example:443/agent', 'ws://ctl-2:7070/agent/']);
    expect(list.indexOf('wss://ctl-1.example/agent')).toBe(0);
    expect(list.indexOf('WS://CTL-2:7070/agent')).toBe(1);
    expect(list.indexOf('ws://ctl-2:7071/agent')).toBe(-1);
    expect(list.indexOf('ws://ctl-2:7070/agent/x')).toBe(-1);
    expect(list.indexOf('wss://ctl-1.example/agent?x=1')).toBe(-1);
    expect(list.indexOf('wss://user:pw@ctl-1.example/agent')).toBe(-1);
    expect(list.indexOf('not a url')).toBe(-1);
    list.select(1);
    expect(list.current).toBe('ws://ctl-2:7070/agent/');
    expect(() => list.select(2)).toThrow(/no controller at position 2/);
  });

  it('refuses an empty list', () => {
    expect(() => new ControllerList([])).toThrow(/config error at controller: must list at least one/);
  });
});
