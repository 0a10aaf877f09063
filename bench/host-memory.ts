/**
 * Memory this VM's kernel hands back to the hypervisor. With free page reporting (virtio-balloon),
 * pages the guest frees are reported to the host, which takes them back; the next time the guest
 * uses such a page, the host must fault it in again. On the machine these figures were taken on
 * that costs 14–23 µs of kernel time per 4 KiB page (docs/performance.md, "When the disk
 * swings"), so a copy whose page cache lands on such pages pays seconds of `sys` time that a copy on
 * recycled pages does not. The bench records how much went back during each section, so a figure
 * that moved with it can be told from one that moved with the code.
 *
 * `reported_kib` is not an upstream kernel parameter (upstream has only `page_reporting_order`):
 * where the kernel does not expose it, these read null.
 */
import { readFileSync } from 'node:fs';

/** Where the kernel exposes them; the functions take another directory for tests. */
export const PAGE_REPORTING_PARAMETERS = '/sys/module/page_reporting/parameters';

/** A parameter made only of digits, as a number; null when absent or anything else. */
function readNumber(dir: string, name: string): number | null {
  let text: string;
  try {
    text = readFileSync(`${dir}/${name}`, 'utf8').trim();
  } catch {
    return null;
  }
  return /^\d+$/.test(text) ? Number(text) : null;
}

/** KiB reported to the host since boot, or null where the kernel does not count them. */
export function reportedToHostKiB(dir = PAGE_REPORTING_PARAMETERS): number | null {
  return readNumber(dir, 'reported_kib');
}

/** Whether free page reporting is on, and its smallest block (pages of 2^order), or null. */
export function pageReporting(dir = PAGE_REPORTING_PARAMETERS): { order: number } | null {
  const order = readNumber(dir, 'page_reporting_order');
  return order === null ? null : { order };
}
