/** `seedwire seed --from A --to B`, `seedwire seeds`, `seedwire seed show ID`, `seedwire seed abort ID`. */
import type { ApiClient, CreateSeedRequest, Facts, SeedView } from '../../client/api.js';
import { EXIT } from '../exit.js';
import { followSeed } from '../follow.js';
import { formatBytes, formatTime, percent, renderTable } from '../format.js';
import { printJson, type Io } from '../io.js';
import { renderSeedReport, renderSteps } from '../report.js';

export function exitCodeOfSeed(seed: SeedView): number {
  if (seed.state === 'succeeded' || seed.state === 'running' || seed.state === 'pending') return EXIT.ok;
  return EXIT.failed;
}

/** The source's facts give the CHANGE MASTER host and port; a report still prints without them. */
async function sourceFactsOf(client: ApiClient, seed: SeedView): Promise<Facts | null> {
  if (seed.state !== 'succeeded') return null;
  try {
    return (await client.agent(seed.source)).facts;
  } catch {
    return null;
  }
}

async function printReport(client: ApiClient, io: Io, seed: SeedView): Promise<void> {
  io.stdout.write(renderSeedReport(seed, await sourceFactsOf(client, seed), io.now()));
  if (seed.state === 'failed' || seed.state === 'aborted') {
    io.stderr.write(`seedwire: seed ${seed.id} ${seed.state}${seed.error ? `: ${seed.error.message} (${seed.error.code})` : ''}\n`);
  }
}

export async function startSeed(client: ApiClient, io: Io, request: CreateSeedRequest, follow: boolean, json: boolean): Promise<number> {
  const created = await client.createSeed(request);
  if (!follow) {
    if (json) printJson(io, created);
    else io.stdout.write(`seed ${created.id} started: ${created.method} seed ${created.source} → ${created.target} (follow it with: seedwire seed show ${created.id})\n`);
    return EXIT.ok;
  }
  if (!json) io.stdout.write(`seed ${created.id} started: ${created.method} seed ${created.source} → ${created.target}, compression ${created.effectiveCompression}\n`);
  const outcome = await followSeed(client, io, created.id, json);
  if (outcome.kind === 'stopped') {
    if (json && outcome.seed) printJson(io, outcome.seed);
    return EXIT.interrupted;
  }
  if (json) printJson(io, outcome.seed);
  else await printReport(client, io, outcome.seed);
  return exitCodeOfSeed(outcome.seed);
}

export async function listSeeds(client: ApiClient, io: Io, limit: number | undefined, json: boolean): Promise<number> {
  const seeds = await client.seeds(limit === undefined ? {} : { limit });
  if (json) {
    printJson(io, seeds);
    return EXIT.ok;
  }
  const rows = seeds.map((s) => [s.id, s.source, s.target, s.method, s.state, s.stage ?? '-', `${percent(s.bytesDone, s.bytesTotal)} of ${formatBytes(s.bytesTotal)}`, formatTime(s.createdAt)]);
  io.stdout.write(rows.length === 0 ? 'no seeds\n' : renderTable(['id', 'source', 'target', 'method', 'state', 'stage', 'progress', 'created'], rows));
  return EXIT.ok;
}

export async function showSeed(client: ApiClient, io: Io, id: string, json: boolean): Promise<number> {
  const seed = await client.seed(id);
  if (json) {
    printJson(io, seed);
    return EXIT.ok;
  }
  const steps = await client.operations({ seed: id, limit: 1000 });
  io.stdout.write(`${renderSeedReport(seed, await sourceFactsOf(client, seed), io.now())}\n${renderSteps(steps, io.now())}`);
  return EXIT.ok;
}

export async function abortSeed(client: ApiClient, io: Io, id: string, json: boolean): Promise<number> {
  const seed = await client.abortSeed(id);
  if (json) printJson(io, seed);
  else io.stdout.write(`seed ${seed.id}: ${seed.state}\n`);
  return EXIT.ok;
}
