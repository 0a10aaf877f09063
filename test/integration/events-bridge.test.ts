/**
 * The fleet's events between controllers (server-stub/cluster/events-bridge.ts) on a real
 * nats-server: the events one controller publishes in one turn of its event loop cross the bus as
 * one message, in order; batches stay under the bus's message limit; an event too large stays
 * local and is counted; a single event in the format of releases before batching is still taken;
 * a controller follows the others' events only while its fleet bus has listeners, and a while after.
 */
import { connect, type NatsConnection } from 'nats';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventsBridge, type EventsBridge } from '../../server-stub/cluster/events-bridge.js';
import { createBusLink, type BusLink } from '../../server-stub/cluster/link.js';
import { SUBJECTS } from '../../server-stub/cluster/subjects.js';
import { createEventBus, type SeedwireEventBus } from '../../server-stub/events/bus.js';
import type { BusEvent } from '../../server-stub/events/types.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { missingTools } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';

const skip = missingTools(['nats-server']);
const log = pino({ level: 'silent' });
const MAX_BYTES = 4096;

interface Side {
  id: string;
  link: BusLink;
  local: SeedwireEventBus;
  fleet: SeedwireEventBus;
  bridge: EventsBridge;
  seen: BusEvent[];
}

let nats: NatsServer;
let watcher: NatsConnection;
const sides: Side[] = [];
/** Every payload on the events subject, as the bus carried it. */
const carried: string[] = [];

async function side(id: string, options: { lingerMs?: number; watched?: boolean } = {}): Promise<Side> {
  const link = createBusLink({ url: nats.url, name: id, log });
  const local = createEventBus();
  const fleet = createEventBus();
  const bridge = createEventsBridge({ link, controllerId: id, local, fleet, log, maxMessageBytes: MAX_BYTES, lingerMs: options.lingerMs ?? 60_000, prepareTimeoutMs: 2_000 });
  const seen: BusEvent[] = [];
  if (options.watched !== false) fleet.subscribe((event) => seen.push(event));
  await waitFor(() => link.connected(), { what: `${id} connected to NATS` });
  const made = { id, link, local, fleet, bridge, seen };
  sides.push(made);
  return made;
}

describe.skipIf(skip)('the events bridge on a real nats-server', () => {
  let a: Side;
  let b: Side;
  beforeAll(async () => {
    nats = await startNatsServer();
    watcher = await connect({ servers: nats.url.replace('nats://', '') });
    watcher.subscribe(SUBJECTS.events, { callback: (_error, msg) => carried.push(Buffer.from(msg.data).toString('utf8')) });
    await watcher.flush();
    a = await side('controller-a');
    b = await side('controller-b');
    // Both subscribed: an event from each reaches the other.
    a.local.publish('agent', { id: 'warm-a' });
    b.local.publish('agent', { id: 'warm-b' });
    await waitFor(() => b.seen.some((e) => (e.data as { id?: string }).id === 'warm-a') && a.seen.some((e) => (e.data as { id?: string }).id === 'warm-b'), { what: 'both bridges subscribed' });
  });
  afterAll(async () => {
    for (const s of sides) {
      s.bridge.close();
      await s.link.close();
    }
    await watcher?.close();
    await nats?.dispose();
  });

  it('sends the events of one turn as one message, in order, and the other side sees each', async () => {
    carried.length = 0;
    const before = b.seen.length;
    for (let i = 0; i < 4; i++) a.local.publish('operation', { id: `op-${i}`, state: i === 3 ? 'succeeded' : 'running' });
    await waitFor(() => b.seen.length >= before + 4, { what: 'four events on the other side' });
    expect(b.seen.slice(before).map((e) => [e.type, (e.data as { id: string }).id])).toEqual([0, 1, 2, 3].map((i) => ['operation', `op-${i}`]));
    await watcher.flush();
    expect(carried).toHaveLength(1);
    expect(JSON.parse(carried[0]!)).toMatchObject({ origin: 'controller-a', events: [{ type: 'operation' }, {}, {}, { data: { id: 'op-3', state: 'succeeded' } }] });
    // Its own events feed its own fleet bus at once, with the same data.
    expect(a.seen.at(-1)?.data).toEqual({ id: 'op-3', state: 'succeeded' });
  });

  it('splits the events of one turn larger than the bus limit into messages under it, losing none', async () => {
    carried.length = 0;
    const before = b.seen.length;
    const filler = 'x'.repeat(900);
    for (let i = 0; i < 20; i++) a.local.publish('output', { operationId: 'op', seq: i, stream: 'stdout', data: filler });
    await waitFor(() => b.seen.length >= before + 20, { what: 'twenty events on the other side' });
    expect(b.seen.slice(before).map((e) => (e.data as { seq: number }).seq)).toEqual([...Array(20).keys()]);
    await watcher.flush();
    expect(carried.length).toBeGreaterThan(4);
    for (const payload of carried) expect(Buffer.byteLength(payload)).toBeLessThanOrEqual(MAX_BYTES);
    expect(a.bridge.unsent).toBe(0);
  });

  it('keeps an event too large for the bus local and counts it', async () => {
    const before = b.seen.length;
    a.local.publish('output', { operationId: 'big', seq: 0, stream: 'stdout', data: 'y'.repeat(MAX_BYTES) });
    a.local.publish('operation', { id: 'after-the-big-one' });
    await waitFor(() => b.seen.some((e) => (e.data as { id?: string }).id === 'after-the-big-one'), { what: 'the next event on the other side' });
    expect(b.seen.slice(before).map((e) => e.type)).toEqual(['operation']);
    expect(a.bridge.unsent).toBe(1);
    expect(a.seen.some((e) => (e.data as { operationId?: string }).operationId === 'big')).toBe(true);
  });

  it('takes a single event as releases before batching sent it, and drops a malformed message', async () => {
    const before = b.seen.length;
    watcher.publish(SUBJECTS.events, Buffer.from(JSON.stringify({ origin: 'controller-old', type: 'seed', at: new Date().toISOString(), data: { id: 'seed-1' } })));
    watcher.publish(SUBJECTS.events, Buffer.from(JSON.stringify({ origin: 'controller-old', events: [{ type: 'nonsense', at: 'x', data: 1 }] })));
    watcher.publish(SUBJECTS.events, Buffer.from(JSON.stringify({ origin: 'controller-old', events: [{ type: 'audit', at: 'x', data: { action: 'after' } }] })));
    await waitFor(() => b.seen.some((e) => (e.data as { action?: string }).action === 'after'), { what: 'the later batch on the other side' });
    expect(b.seen.slice(before).map((e) => [e.type, e.data])).toEqual([
      ['seed', { id: 'seed-1' }],
      ['audit', { action: 'after' }],
    ]);
  });

  it('follows the others\' events only while its fleet bus has a listener and for the linger after; a cursor from before resumes with a gap', async () => {
    const c = await side('controller-c', { lingerMs: 300, watched: false });
    const idsSeenBy = (events: BusEvent[]): string[] => events.map((e) => (e.data as { id?: string }).id ?? '');
    // Nobody watches c's fleet bus: it does not follow, and holds only its own events.
    expect(c.bridge.following).toBe(false);
    c.local.publish('agent', { id: 'own-1' });
    a.local.publish('agent', { id: 'unseen-1' });
    await waitFor(() => b.seen.some((e) => (e.data as { id?: string }).id === 'unseen-1'), { what: 'b to see a\'s event' });
    expect(idsSeenBy(c.fleet.since(0) ?? [])).toEqual(['own-1']);
    const cursorBefore = c.fleet.lastSeq;

    // A viewer arrives: prepared once the server has the subscription, then it sees a's events.
    await c.fleet.prepare();
    expect(c.bridge.following).toBe(true);
    const viewed: BusEvent[] = [];
    const stop = c.fleet.subscribe((event) => viewed.push(event));
    a.local.publish('agent', { id: 'seen-1' });
    await waitFor(() => idsSeenBy(viewed).includes('seen-1'), { what: 'the viewer on c to see a\'s event' });
    // Its ring starts where following did: a cursor from before gets a gap, not a silent hole.
    expect(c.fleet.since(cursorBefore)).toBeNull();
    expect(idsSeenBy(c.fleet.since(c.fleet.firstSeq - 1) ?? [])).toEqual(['seen-1']);

    // The viewer leaves: c still follows for the linger, then stops.
    stop();
    expect(c.bridge.following).toBe(true);
    await waitFor(() => !c.bridge.following, { timeoutMs: 5_000, what: 'c to stop following after the linger' });
    const held = c.fleet.lastSeq;
    a.local.publish('agent', { id: 'unseen-2' });
    await waitFor(() => b.seen.some((e) => (e.data as { id?: string }).id === 'unseen-2'), { what: 'b to see a\'s second event' });
    expect(c.fleet.lastSeq).toBe(held);
    // c's own events still reach the others while it does not follow theirs.
    c.local.publish('agent', { id: 'own-2' });
    await waitFor(() => b.seen.some((e) => (e.data as { id?: string }).id === 'own-2'), { what: 'b to see c\'s event' });
  });
});
