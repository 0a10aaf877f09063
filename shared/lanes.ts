/**
 * Parallel transfer lanes, the part both ends share: which lane a stream is, and how the lanes'
 * summaries combine into the seed's (docs/seed-flow.md, "Lanes").
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** Most lanes a seed may use (the API's bound). */
export const MAX_LANES = 64;

/** Lane `index` of `count`; absent on the wire means the one lane of a one-lane seed. */
export const LaneSchema = z
  .object({ index: z.number().int().nonnegative(), count: z.number().int().min(2).max(MAX_LANES) })
  .strict()
  .refine((lane) => lane.index < lane.count, { message: 'index must be below count' });
export type Lane = z.infer<typeof LaneSchema>;

export interface LaneSummary {
  files: number;
  bytes: number;
  digest: string;
}

/**
 * The seed's summary from its lanes' summaries, in lane order. One lane: that lane's summary as
 * it is (a one-lane seed's digest is the stream digest, as before lanes existed). Several: files
 * and bytes summed, digest the hex SHA-256 over the UTF-8 lines
 * `lane <i>\0<files>\0<bytes>\0<digest>\n` for i = 0 … count-1.
 */
export function combineLaneSummaries<T extends LaneSummary>(lanes: readonly T[]): LaneSummary {
  if (lanes.length === 1) {
    const only = lanes[0] as T;
    return { files: only.files, bytes: only.bytes, digest: only.digest };
  }
  const hash = createHash('sha256');
  let files = 0;
  let bytes = 0;
  lanes.forEach((lane, i) => {
    hash.update(`lane ${i}\0${lane.files}\0${lane.bytes}\0${lane.digest}\n`, 'utf8');
    files += lane.files;
    bytes += lane.bytes;
  });
  return { files, bytes, digest: hash.digest('hex') };
}
