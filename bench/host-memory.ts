/**
 * Memory this VM's kernel hands back to the hypervisor. With free page reporting (virtio-balloon),
 * pages the guest frees are reported to the host, which takes them back; the next time the guest
 * uses such a page, the host must fault it in again. On the machine these figures were taken on
 * that costs 14–23 µs of kernel time per 4 KiB page (docs/performance.md, "Memory the VM gives
 * back"), so a copy whose page cache lands on such pages pays seconds of `sys` time that a copy on
 * recycled pages does not. The bench records how much went back during each section, so a figure
 * that moved with it can be told from one that moved with the code.
 *
 * `reported_kib` is not an upstream kernel parameter (upstream has only `page_reporting_order`):
 * where the kernel does not expose it, these read null.
 */
import { readFileSync } from 'node:fs';

const PARAMETERS = '/sys/module/page_reporting/parameters';

function readParameter(name: string): string | null {
  try {
    return readFileSync(`${PARAMETERS}/${name}`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** KiB reported to the host since boot, or null where the kernel does not count them. */
export function reportedToHostKiB(): number | null {
  const value = readParameter('reported_kib');
  if (value === null || !/^\d+$/.test(value)) return null;
  return Number(value);
}

/** Whether free page reporting is on, and its smallest block (pages of 2^order), or null. */
export function pageReporting(): { order: number } | null {
  const order = readParameter('page_reporting_order');
  return order !== null && /^\d+$/.test(order) ? { order: Number(order) } : null;
}
