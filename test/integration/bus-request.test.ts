/**
 * The bus link's own request/reply (server-stub/cluster/link.ts) on a real nats-server: replies
 * reach the request that asked, concurrent requests are not mixed up, "no responders" and a
 * timeout are told apart (routing turns the first into "agent not held", the second into "bus
 * unavailable"), a reply after the timeout is dropped, and requests pending at close fail at once.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusRequestError, createBusLink, type BusLink } from '../../server-stub/cluster/link.js';
import { startNatsServer, type NatsServer } from '../helpers/nats.js';
import { missingTools } from '../helpers/requirements.js';
import { waitFor } from '../helpers/wait.js';

const skip = missingTools(['nats-server']);
const log = pino({ level: 'silent' });
const text = (data: Uint8Array): string => Buffer.from(data).toString('utf8');
const bytes = (value: string): Uint8Array => Buffer.from(value, 'utf8');

describe.skipIf(skip)('bus requests on a real nats-server', () => {
  let nats: NatsServer;
  let asker: BusLink;
  let answerer: BusLink;
  /** Replies held back by the slow responder, answered when the test says. */
  const held: Array<() => void> = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    asker = createBusLink({ url: nats.url, name: 'asker', log });
    answerer = createBusLink({ url: nats.url, name: 'answerer', log });
    await waitFor(() => asker.connected() && answerer.connected(), { what: 'both links connected' });
    const nc = answerer.require();
    nc.subscribe('test.echo', { callback: (_error, msg) => msg.respond(bytes(`echo:${text(msg.data)}`)) });
    // Answers in reverse order of arrival, once four are in: replies must still find their request.
    const batch: Array<() => void> = [];
    nc.subscribe('test.reverse', {
      callback: (_error, msg) => {
        batch.push(() => msg.respond(bytes(`reverse:${text(msg.data)}`)));
        if (batch.length === 4) for (const answer of batch.splice(0).reverse()) answer();
      },
    });
    nc.subscribe('test.slow', { callback: (_error, msg) => held.push(() => msg.respond(bytes('late'))) });
    await nc.flush();
  });
  afterAll(async () => {
    await asker?.close();
    await answerer?.close();
    await nats?.dispose();
  });

  it('resolves with the reply to its own request, even when replies come out of order', async () => {
    expect(text((await asker.request('test.echo', bytes('one'), 2_000)).data)).toBe('echo:one');
    const answers = await Promise.all(['a', 'b', 'c', 'd'].map(async (k) => text((await asker.request('test.reverse', bytes(k), 2_000)).data)));
    expect(answers).toEqual(['reverse:a', 'reverse:b', 'reverse:c', 'reverse:d']);
  });

  it("says 'no-responders' at once when nobody subscribes, naming the subject", async () => {
    const started = Date.now();
    const error = await asker.request('test.nobody', bytes('?'), 10_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BusRequestError);
    expect((error as BusRequestError).reason).toBe('no-responders');
    expect((error as BusRequestError).message).toContain('test.nobody');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("says 'timeout' when a subscriber does not answer in time, and drops its late reply", async () => {
    const error = await asker.request('test.slow', bytes('?'), 200).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BusRequestError);
    expect((error as BusRequestError).reason).toBe('timeout');
    expect((error as BusRequestError).message).toContain('test.slow');
    held.shift()!(); // the late reply: nothing waits for it any more
    expect(text((await asker.request('test.echo', bytes('after'), 2_000)).data)).toBe('echo:after');
  });

  it("fails the requests pending at close with 'closed', and refuses new ones", async () => {
    const link = createBusLink({ url: nats.url, name: 'closing', log });
    await waitFor(() => link.connected(), { what: 'link connected' });
    const pending = link.request('test.slow', bytes('?'), 30_000).catch((e: unknown) => e);
    await waitFor(() => held.length > 0, { what: 'the slow responder got the request' });
    await link.close();
    const error = await pending;
    expect(error).toBeInstanceOf(BusRequestError);
    expect((error as BusRequestError).reason).toBe('closed');
    await expect(link.request('test.echo', bytes('?'), 1_000)).rejects.toMatchObject({ code: 'SEEDWIRE_BUS_UNAVAILABLE' });
    held.splice(0).forEach((answer) => answer());
  });
});
