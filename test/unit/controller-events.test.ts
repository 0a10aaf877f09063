import { describe, expect, it } from 'vitest';
import { createEventBus } from '../../server-stub/events/bus.js';
import { formatSseEvent, parseCursor } from '../../server-stub/events/sse.js';

describe('event bus ring', () => {
  it('numbers events and replays those after a cursor', () => {
    const bus = createEventBus({ maxEvents: 10 });
    for (let i = 0; i < 5; i++) bus.publish('audit', { i });
    expect(bus.lastSeq).toBe(5);
    expect(bus.since(2)!.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(bus.since(5)).toEqual([]);
    expect(bus.since(0)!.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('replays an event as it was published, from its serialized text', () => {
    const bus = createEventBus({ maxEvents: 10 });
    const row = { id: 'op-1', state: 'running', result: null as unknown };
    const published = bus.publish('operation', row);
    row.state = 'succeeded'; // the publisher's object changes afterwards
    row.result = { hostname: 'db-1' };
    const [replayed] = bus.since(0)!;
    expect(replayed).toEqual({ seq: 1, type: 'operation', at: published.at, data: { id: 'op-1', state: 'running', result: null } });
    expect(bus.serialized(replayed!)).toBe('{"id":"op-1","state":"running","result":null}');
  });

  it('returns null for a cursor that fell out of the ring (the viewer gets a gap)', () => {
    const bus = createEventBus({ maxEvents: 3 });
    for (let i = 0; i < 10; i++) bus.publish('audit', { i });
    expect(bus.firstSeq).toBe(8);
    expect(bus.since(2)).toBeNull();
    expect(bus.since(7)!.map((e) => e.seq)).toEqual([8, 9, 10]);
  });

  it('is bounded by bytes as well as count', () => {
    const bus = createEventBus({ maxEvents: 1000, maxBytes: 1000 });
    for (let i = 0; i < 100; i++) bus.publish('output', { data: 'x'.repeat(100) });
    expect(bus.lastSeq - bus.firstSeq + 1).toBeLessThanOrEqual(10);
  });

  it('keeps delivering when a listener throws, and unsubscribes', () => {
    const bus = createEventBus();
    const seen: number[] = [];
    bus.subscribe(() => {
      throw new Error('boom');
    });
    const off = bus.subscribe((e) => seen.push(e.seq));
    bus.publish('audit', {});
    off();
    bus.publish('audit', {});
    expect(seen).toEqual([1]);
  });

  it('formats SSE with the seq as id and parses cursors strictly', () => {
    const bus = createEventBus();
    const event = bus.publish('operation', { id: 'x' });
    expect(formatSseEvent(event, bus.serialized(event))).toMatch(/^id: 1\nevent: operation\ndata: \{"seq":1,"type":"operation","at":"[^"]+","data":\{"id":"x"\}\}\n\n$/);
    expect(parseCursor('12')).toBe(12);
    expect(parseCursor('-1')).toBeNull();
    expect(parseCursor('1e3')).toBeNull();
    expect(parseCursor(undefined)).toBeNull();
  });
});
