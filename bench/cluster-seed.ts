/**
 * The cluster section's last part (issue 12's fourth figure): a running seed adopted after the
 * controller that owns it is SIGKILLed. On the section's PostgreSQL and NATS, once its simulated
 * fleet has stopped: a fresh controller joins the two survivors, two real agents (the one-file
 * bundle, their `controller` lists starting at it) connect to it, and a seed it owns runs at a
 * capped rate. At 30% of the transfer the owner is SIGKILLed. Measured from the kill, as an
 * operator sees it through the API of a survivor: when another controller audits `seed.adopt`, when
 * the seed's `bytesDone` passes what it had at the kill (the transfer runs again: the figure,
 * target ≤ 60 s), and when it ends; then whether it succeeded and its copy equals the source, and
 * the bytes each resumed lane sent twice (from the source agent's `seed-send ended` lines),
 * against two receive windows.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { ApiClient, SeedView } from '../client/api.js';
import { LIMITS } from '../shared/limits.js';
import { checkSeedCopy } from './dataset.js';
import { fakeMysql, startAgent, waitForAgents, waitUntil } from './harness.js';
import { makeTemp, removeTemp, stopTracked, type Tracked } from './procs.js';

/** A controller of the cluster, as the cluster section knows it. */
export interface SeedMember {
  proc: Tracked;
  url: string;
  wsUrl: string;
  client: ApiClient;
}

export interface SeedAdoptionResults {
  /** The copy: files × size, and the cap on the transfer. */
  datasetBytes: number;
  maxBytesPerSec: number;
  lanes: number;
  /** Share of bytesTotal done (bytesDone) when the owner was killed. */
  doneAtKill: number | null;
  /** Seconds from the SIGKILL until a survivor audited `seed.adopt` (the audit row's own time). */
  adoptedSeconds: number | null;
  /** Seconds from the SIGKILL until the seed's bytesDone passed its value at the kill (the figure). */
  resumedSeconds: number | null;
  /** Seconds from the SIGKILL until the seed ended. */
  endedSeconds: number | null;
  /** Which survivor adopted it (its URL), and the seed's end. */
  adopter: string | null;
  state: string | null;
  attempts: number | null;
  /** The copy equals the source (checkSeedCopy); `verified` is its line. */
  copyOk: boolean;
  verified: string | null;
  /** Per resumed lane: bytes sent twice (where its first send stopped minus where its next started). */
  resentBytes: number[];
  /** Two receive windows per lane (shared/limits.ts windowMaxBytes × 2): the bound on resentBytes. */
  resendBoundBytes: number;
  note: string | null;
}

const FILES = 16;
const FILE_BYTES = 4 * 1024 * 1024;
const MAX_BYTES_PER_SEC = 8 * 1024 * 1024;
const LANES = 2;
/** How long the seed may take to reach 30% of its transfer, and to end after the kill. */
const REACH_MS = 120_000;
const END_MS = 180_000;

/**
 * Runs the part; `startOwner` starts the controller that will own the seed (and be killed),
 * `survivors` are the others. Never throws: a failure is in `note`, the figures it kept from
 * being measured stay null.
 */
export async function measureSeedAdoption(startOwner: () => Promise<SeedMember>, survivors: SeedMember[], agentToken: string, log: (line: string) => void): Promise<SeedAdoptionResults> {
  const results: SeedAdoptionResults = {
    datasetBytes: FILES * FILE_BYTES,
    maxBytesPerSec: MAX_BYTES_PER_SEC,
    lanes: LANES,
    doneAtKill: null,
    adoptedSeconds: null,
    resumedSeconds: null,
    endedSeconds: null,
    adopter: null,
    state: null,
    attempts: null,
    copyOk: false,
    verified: null,
    resentBytes: [],
    resendBoundBytes: 2 * LIMITS.windowMaxBytes,
    note: null,
  };
  const work = makeTemp('seedwire-benchcluster-seed-');
  const agents: Tracked[] = [];
  try {
    const sourceDir = join(work, 'source');
    const targetDir = join(work, 'target');
    mkdirSync(join(sourceDir, 'shop'), { recursive: true });
    mkdirSync(targetDir);
    for (let i = 0; i < FILES; i++) writeFileSync(join(sourceDir, 'shop', `t${i}.ibd`), randomBytes(FILE_BYTES));
    const sourceFlag = join(work, 'source-mysql-running');
    writeFileSync(sourceFlag, ''); // the source "runs" until the cold seed stops it

    const owner = await startOwner();
    const list = [owner.wsUrl, ...survivors.map((s) => s.wsUrl)];
    const source = startAgent('cluster-seed-source', { controller: list, token: agentToken, id: 'cluster-seed-source', mysql: fakeMysql(sourceDir, sourceFlag) });
    agents.push(source);
    agents.push(startAgent('cluster-seed-target', { controller: list, token: agentToken, id: 'cluster-seed-target', mysql: fakeMysql(targetDir, join(work, 'target-mysql-running')) }));
    await waitForAgents(owner.client, ['cluster-seed-source', 'cluster-seed-target'], true);

    const created = await owner.client.createSeed({ source: 'cluster-seed-source', target: 'cluster-seed-target', method: 'cold', compression: 'none', startTarget: false, lanes: LANES, maxBytesPerSec: MAX_BYTES_PER_SEC });
    const id = created.id;
    const atKill = await waitUntil(`seed ${id} to reach 30% of its transfer`, REACH_MS, async () => {
      const seed = await owner.client.seed(id);
      return seed.stage === 'transfer' && seed.bytesTotal !== null && seed.bytesDone / seed.bytesTotal >= 0.3 ? seed : null;
    });
    results.doneAtKill = Math.round((atKill.bytesDone / atKill.bytesTotal!) * 1000) / 1000;
    process.kill(-owner.proc.pid, 'SIGKILL');
    const killedAt = Date.now();
    await owner.proc.exited;
    log(`cluster: seed ${id}: owner SIGKILLed at ${Math.round(results.doneAtKill * 100)}% of the transfer`);

    const survivor = survivors[0]!.client;
    const since = (at: number): number => Math.round((at - killedAt) / 100) / 10;
    let seed: SeedView | null = null;
    // bytesDone as last read after the adoption: the transfer runs again once it grows (the store
    // may still show the dead owner's last progress at first, or the resume's lower offsets).
    let afterAdopt: number | null = null;
    const deadline = killedAt + END_MS;
    while (Date.now() < deadline) {
      seed = await survivor.seed(id).catch(() => null);
      if (seed !== null && results.adoptedSeconds !== null && results.resumedSeconds === null) {
        if (afterAdopt !== null && seed.bytesDone > afterAdopt) results.resumedSeconds = since(Date.now());
        afterAdopt = seed.bytesDone;
      }
      if (results.adoptedSeconds === null) {
        const audit = await survivor.audit({ limit: 200 }).catch(() => []);
        const adopt = audit.find((a) => a.action === 'seed.adopt' && (a.params as Record<string, unknown> | null)?.['id'] === id);
        if (adopt) {
          results.adoptedSeconds = since(Date.parse(adopt.at));
          results.adopter = String((adopt.params as Record<string, unknown>)['ownerUrl'] ?? '?');
        }
      }
      if (seed !== null && ['succeeded', 'failed', 'aborted'].includes(seed.state)) {
        results.endedSeconds = since(Date.parse(seed.endedAt ?? new Date().toISOString()));
        // Ended between two reads after its adoption: it ran again by then at the latest.
        if (seed.state === 'succeeded' && results.adoptedSeconds !== null) results.resumedSeconds ??= results.endedSeconds;
        break;
      }
      await delay(100);
    }
    results.state = seed?.state ?? null;
    results.attempts = seed?.attempts ?? null;
    if (seed?.state === 'succeeded') {
      const check = await checkSeedCopy(sourceDir, targetDir);
      results.copyOk = check.ok;
      results.verified = check.text;
    } else results.note = `seed ${id} ${seed?.state ?? 'not read'}${seed?.error ? `: ${seed.error.code}: ${seed.error.message}` : ''}`;
    // Each lane's sends from the source agent's log: a resumed lane has two or more.
    const sends = source.records.filter((r) => r['msg'] === 'seed-send ended' && r['seedId'] === id) as Array<{ from: number; to: number; lane?: number }>;
    for (let lane = 0; lane < LANES; lane++) {
      const mine = sends.filter((s) => (s.lane ?? 0) === lane);
      if (mine.length >= 2) results.resentBytes.push(mine[0]!.to - mine[1]!.from);
    }
    log(
      `cluster: seed ${id}: adopted by ${results.adopter} after ${results.adoptedSeconds} s, transfer running again after ${results.resumedSeconds} s, ${results.state} after ${results.endedSeconds} s (attempts ${results.attempts}); ${results.verified ?? 'not verified'}; sent twice per resumed lane ${results.resentBytes.map((b) => `${(b / 2 ** 20).toFixed(1)} MiB`).join(', ') || 'none'} (bound ${results.resendBoundBytes / 2 ** 20} MiB)`,
    );
  } catch (error) {
    results.note = error instanceof Error ? error.message : String(error);
    log(`cluster seed adoption: ${results.note}`);
  } finally {
    await Promise.allSettled(agents.map((a) => stopTracked(a)));
    removeTemp(work);
  }
  return results;
}
