/** Human output: aligned tables (cli-table3), sizes, durations, times. */
import Table from 'cli-table3';

/** Borderless, left-aligned columns (like `ps` or `kubectl get`): easy to read and to grep. */
const PLAIN_CHARS = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
};

export function renderTable(head: string[], rows: Array<Array<string | number>>): string {
  const table = new Table({
    head: head.map((h) => h.toUpperCase()),
    chars: PLAIN_CHARS,
    // No colours: output goes to pipes and files as often as to terminals.
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  table.push(...rows.map((row) => row.map(String)));
  // cli-table3 pads the last column; trailing spaces only get in the way of grep and diff.
  return `${table.toString().split('\n').map((line) => line.trimEnd()).join('\n')}\n`;
}

/** `key  value` lines with the keys aligned. */
export function renderPairs(pairs: Array<[string, string]>): string {
  const width = Math.max(0, ...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `${key.padEnd(width)}  ${value}`).join('\n') + '\n';
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '-';
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatRate(bytesPerSec: number | null | undefined): string {
  return bytesPerSec === null || bytesPerSec === undefined ? '-' : `${formatBytes(bytesPerSec)}/s`;
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Seconds between two ISO times (the second defaults to now). */
export function secondsBetween(from: string | null, to: string | null, now: number): number | null {
  if (!from) return null;
  const end = to ? Date.parse(to) : now;
  return (end - Date.parse(from)) / 1000;
}

export function formatAgo(at: string | null, now: number): string {
  const seconds = secondsBetween(at, null, now);
  if (seconds === null) return '-';
  return seconds < 1 ? 'now' : `${formatDuration(seconds)} ago`;
}

/** An ISO time as `YYYY-MM-DD HH:MM:SS` (UTC, as stored). */
export function formatTime(at: string | null): string {
  return at ? at.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '-';
}

export function yesNo(value: boolean | null | undefined): string {
  return value === null || value === undefined ? '-' : value ? 'yes' : 'no';
}

export function percent(done: number, total: number | null): string {
  return total ? `${Math.min(100, Math.floor((done / total) * 100))}%` : '-';
}
