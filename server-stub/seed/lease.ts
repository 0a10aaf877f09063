/**
 * Seed leases (cluster mode, several controllers on one PostgreSQL store): each unfinished seed is
 * driven by exactly one controller, the holder of its lease in the store. The owner renews all its
 * leases in one statement every leaseMs/3 and checks a seed's lease before each of its steps
 * (fencing); a controller that cannot renew or finds the lease taken stops driving the seed
 * without touching its agents. Every controller sweeps for leases that expired and adopts one
 * such seed at a time. docs/scale-out.md ("Seeds across controllers").
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { HeldLease, LeaseHolder, SeedLease, SeedStore } from './store.js';

export interface SeedOwnership {
  /** This controller's lease owner id: stable across restarts on one data dir (ownerIdFor). */
  owner: string;
  /** Where agents and peers reach this controller (its advertise URL); null without a bus. */
  ownerUrl(): string | null;
  /** @default CLUSTER_LIMITS.seedLeaseMs — a lease not renewed this long may be taken by another controller. */
  leaseMs: number;
  /** @default CLUSTER_LIMITS.seedSweepMs — how often expired leases are looked for. */
  sweepMs: number;
  /** @default CLUSTER_LIMITS.summonEveryMs — how often a seed waiting for an agent asks for it again. */
  summonEveryMs: number;
  /** @default CLUSTER_LIMITS.summonWaitMs — how long a new seed waits for agents held elsewhere before its prechecks. */
  summonWaitMs: number;
  /** Asks the controller that holds the agent to send it here (cluster bus); never rejects. */
  summon(agentId: string): Promise<void>;
}

const OWNER_FILE = 'controller-id';

/**
 * The lease owner id kept in the data dir, so a controller restarted on it takes its own seeds
 * back at once instead of waiting for their leases to expire. Each controller needs its own data
 * dir (two processes on one would both think they own the same seeds).
 */
export function ownerIdFor(dataDir: string): string {
  const path = join(dataDir, OWNER_FILE);
  try {
    const id = readFileSync(path, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{8,64}$/.test(id)) return id;
  } catch {
    // not yet created
  }
  mkdirSync(dataDir, { recursive: true });
  const id = `ctl-${randomBytes(8).toString('hex')}`;
  writeFileSync(path, `${id}\n`, { mode: 0o600 });
  return id;
}

/** The lease operations of one controller, over the seed store, with the time of the last renewal. */
export class SeedLeases {
  /** When this controller last knew it held its leases (Date.now()). */
  private lastRenewedAt = Date.now();

  constructor(
    private readonly store: SeedStore,
    readonly ownership: SeedOwnership,
    private readonly log: Logger,
  ) {}

  get owner(): string {
    return this.ownership.owner;
  }

  holder(): LeaseHolder {
    return { owner: this.ownership.owner, ownerUrl: this.ownership.ownerUrl() };
  }

  /** The lease to create a seed with (owned from its first row). */
  newLease(): LeaseHolder & { leaseMs: number } {
    return { ...this.holder(), leaseMs: this.ownership.leaseMs };
  }

  /** The lease as it was before, or null when another controller holds it. */
  claim(id: string): Promise<SeedLease | null> {
    return this.store.claimLease(id, this.holder(), this.ownership.leaseMs);
  }

  claimable(): Promise<string[]> {
    return this.store.claimable(this.owner);
  }

  /**
   * Extends every lease of this controller; null when the store could not be reached. Past a
   * lease's length without a renewal, the caller must take every lease as lost.
   */
  async renewAll(): Promise<HeldLease[] | null> {
    try {
      const held = await this.store.renewLeases(this.owner, this.ownership.leaseMs);
      this.lastRenewedAt = Date.now();
      return held;
    } catch (error) {
      this.log.warn({ err: error, sinceRenewalMs: Date.now() - this.lastRenewedAt }, 'could not renew the seed leases');
      return null;
    }
  }

  /** True while the last successful renewal is younger than a lease (the store may be down meanwhile). */
  stillValid(): boolean {
    return Date.now() - this.lastRenewedAt < this.ownership.leaseMs;
  }

  /**
   * The fencing check: held (and extended) or lost (another controller took it). When the store
   * does not answer, the lease counts as held while the last renewal is younger than a lease.
   */
  async check(id: string): Promise<{ held: boolean; abortRequested: boolean }> {
    try {
      const lease = await this.store.checkLease(id, this.owner, this.ownership.leaseMs);
      return lease ? { held: true, abortRequested: lease.abortRequested } : { held: false, abortRequested: false };
    } catch (error) {
      const held = this.stillValid();
      this.log.warn({ err: error, seedId: id, held }, 'could not check the seed lease');
      return { held, abortRequested: false };
    }
  }

  /** Whether the store still names this controller as the owner (a seed that just finished is not fenced). */
  async stillOwner(id: string): Promise<boolean> {
    return (await this.store.lease(id))?.owner === this.owner;
  }

  /** A graceful stop: this controller's leases end now, so another controller adopts its seeds at once. */
  async releaseAll(): Promise<void> {
    try {
      const released = await this.store.releaseLeases(this.owner);
      if (released > 0) this.log.info({ released }, 'seed leases released for adoption');
    } catch (error) {
      this.log.warn({ err: error }, 'could not release the seed leases; they expire by themselves');
    }
  }
}
