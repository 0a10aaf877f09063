/** Parsing `lvs --reportformat json` (lvm2's report format), validated with zod at the boundary. */
import { z } from 'zod';
import { SeedwireError } from '../../shared/errors.js';

const LvRow = z.object({
  lv_name: z.string(),
  lv_path: z.string(),
  lv_time: z.string(),
  lv_size: z.string(),
  origin: z.string(),
});
const LvsReport = z.object({ report: z.array(z.object({ lv: z.array(LvRow) })).min(1) });

export interface LvInfo {
  name: string;
  path: string;
  createdAt: string | null;
  sizeBytes: number | null;
  origin: string;
}

/** lvm prints "2026-11-25 06:30:00 +0000"; anything else becomes null. */
export function parseLvTime(text: string): string | null {
  const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) ([+-])(\d{2})(\d{2})$/.exec(text.trim());
  if (!m) return null;
  const date = new Date(`${m[1]}T${m[2]}${m[3]}${m[4]}:${m[5]}`);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

function parseSize(text: string): number | null {
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

export function parseLvsReport(stdout: string): LvInfo[] {
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch (error) {
    throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `lvs printed something that is not JSON: ${stdout.slice(0, 200)}`, { cause: error });
  }
  const parsed = LvsReport.safeParse(json);
  if (!parsed.success) throw new SeedwireError('SEEDWIRE_COMMAND_FAILED', `lvs report has an unexpected shape: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data.report.flatMap((r) => r.lv).map((lv) => ({
    name: lv.lv_name,
    path: lv.lv_path,
    createdAt: parseLvTime(lv.lv_time),
    sizeBytes: parseSize(lv.lv_size),
    origin: lv.origin,
  }));
}

/** Our snapshots: snapshots of the configured origin LV whose name carries the prefix (prefix stripped). */
export function selectSnapshotLvs(lvs: readonly LvInfo[], origin: string, prefix: string): Array<LvInfo & { snapshotName: string }> {
  return lvs
    .filter((lv) => lv.origin === origin && lv.name.startsWith(prefix) && lv.name.length > prefix.length)
    .map((lv) => ({ ...lv, snapshotName: lv.name.slice(prefix.length) }))
    .sort((a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? '') || a.name.localeCompare(b.name));
}
