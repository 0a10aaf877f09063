/**
 * Which lane carries what: a pure, deterministic assignment of a tree's entries (in walk order)
 * to the lanes of a seed, large files split into ranges. Every lane's sender walks the same tree
 * and runs the same assignment, keeping its own part, so no plan travels and a resumed lane gets
 * exactly the byte stream it had (the tree does not change: a snapshot or a stopped datadir).
 *
 * - Directories go to every lane (the tree writer creates them idempotently), so a lane never
 *   writes into a directory that another, slower lane has not made yet.
 * - A file larger than `rangeBytes` is split into ranges of `rangeBytes` (the last one shorter);
 *   each range, each smaller file and each symlink goes to the lane with the least load so far
 *   (ties: the lowest index). A unit's load is its bytes plus `recordCost`, what a record costs
 *   beyond its bytes (open, close, the batched sync), so lanes of many small files balance too.
 *   Greedy in walk order keeps every lane within one unit of the others.
 *
 * One lane: everything in order, no ranges (the stream of a seed before lanes existed).
 */
import type { DataHeader, EntryHeader, RangeHeader } from './format.js';

/**
 * Range size: 64 MiB. Large enough that a range's header, trailer and digest line (~200 bytes)
 * and its open/sync cost vanish beside its bytes; small enough that lanes stay balanced on a
 * datadir with one big ibdata1 or a few large tablespaces (within one range: 64 MiB of a
 * multi-gigabyte seed), and that resuming inside a range re-hashes at most 64 MiB on each side.
 */
export const DEFAULT_RANGE_BYTES = 64 * 1024 * 1024;
/** What a record costs beyond its bytes, in bytes of transfer time (open, write, close, sync). */
export const RECORD_COST_BYTES = 32 * 1024;

export interface LaneUnit {
  /** The lane that carries it, or 'all' (directories). */
  lane: number | 'all';
  /** The record to send: the entry itself, or a range of its file. */
  header: EntryHeader | RangeHeader;
}

export interface LaneAssignerOptions {
  count: number;
  /** @default DEFAULT_RANGE_BYTES */
  rangeBytes?: number;
  /** @default RECORD_COST_BYTES */
  recordCost?: number;
}

export class LaneAssigner {
  readonly count: number;
  private readonly rangeBytes: number;
  private readonly recordCost: number;
  /** Load assigned to each lane so far. */
  readonly loads: number[];

  constructor(options: LaneAssignerOptions) {
    if (!Number.isInteger(options.count) || options.count < 1) throw new RangeError(`lane count ${options.count} is not a positive integer`);
    this.count = options.count;
    this.rangeBytes = options.rangeBytes ?? DEFAULT_RANGE_BYTES;
    if (!Number.isInteger(this.rangeBytes) || this.rangeBytes < 1) throw new RangeError(`range size ${this.rangeBytes} is not a positive integer`);
    this.recordCost = options.recordCost ?? RECORD_COST_BYTES;
    this.loads = new Array<number>(this.count).fill(0);
  }

  /** The records the next entry (in walk order) becomes, each with its lane. */
  assign(header: EntryHeader): LaneUnit[] {
    if (this.count === 1) return [{ lane: 0, header }];
    switch (header.type) {
      case 'dir':
        return [{ lane: 'all', header }];
      case 'symlink':
        return [{ lane: this.take(0), header }];
      case 'file': {
        if (header.size <= this.rangeBytes) return [{ lane: this.take(header.size), header }];
        const units: LaneUnit[] = [];
        for (let offset = 0; offset < header.size; offset += this.rangeBytes) {
          const length = Math.min(this.rangeBytes, header.size - offset);
          const range: RangeHeader = { type: 'range', path: header.path, mode: header.mode, mtimeMs: header.mtimeMs, size: header.size, offset, length };
          units.push({ lane: this.take(length), header: range });
        }
        return units;
      }
    }
  }

  /** The records of `header` that lane `index` carries. */
  unitsFor(header: EntryHeader, index: number): Array<EntryHeader | RangeHeader> {
    return this.assign(header)
      .filter((unit) => unit.lane === 'all' || unit.lane === index)
      .map((unit) => unit.header);
  }

  private take(bytes: number): number {
    let best = 0;
    for (let i = 1; i < this.count; i += 1) if ((this.loads[i] as number) < (this.loads[best] as number)) best = i;
    this.loads[best] = (this.loads[best] as number) + bytes + this.recordCost;
    return best;
  }
}

/** Whether a record carries file data. */
export function isDataHeader(header: EntryHeader | RangeHeader): header is DataHeader {
  return header.type === 'file' || header.type === 'range';
}
