/** Parsing of argument values: `--param k=v`, `--max-rate 50M`, counts. */
import type { z } from 'zod';
import { PUBLIC_OP_PARAMS } from '../shared/ops.js';
import { usageError } from './exit.js';

/** commander's collector for a repeatable option. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function fieldSchema(op: string, key: string): z.ZodType | null {
  if (!Object.hasOwn(PUBLIC_OP_PARAMS, op)) return null;
  const schema = PUBLIC_OP_PARAMS[op as keyof typeof PUBLIC_OP_PARAMS] as z.ZodObject;
  return (schema.shape as Record<string, z.ZodType | undefined>)[key] ?? null;
}

/**
 * `k=v` pairs into params. A value goes as a string unless the operation's own schema wants a
 * number or boolean there (`lines=50`); `k:=JSON` sends raw JSON. Unknown keys are passed on for
 * the controller to refuse by name.
 */
export function parseParams(op: string, pairs: readonly string[]): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const pair of pairs) {
    const json = /^([^=:]+):=(.*)$/s.exec(pair);
    if (json) {
      try {
        params[json[1]!] = JSON.parse(json[2]!) as unknown;
      } catch {
        throw usageError(`--param ${pair}: the value after := is not JSON`);
      }
      continue;
    }
    const eq = pair.indexOf('=');
    if (eq <= 0) throw usageError(`--param ${pair}: expected KEY=VALUE`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    params[key] = coerce(fieldSchema(op, key), value);
  }
  return params;
}

function coerce(schema: z.ZodType | null, value: string): unknown {
  if (!schema || schema.safeParse(value).success) return value;
  const candidates: unknown[] = [];
  if (/^-?\d+(\.\d+)?$/.test(value)) candidates.push(Number(value));
  if (value === 'true' || value === 'false') candidates.push(value === 'true');
  return candidates.find((candidate) => schema.safeParse(candidate).success) ?? value;
}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** `50M`, `512k`, `1.5G`, `65536` (bytes per second; K/M/G are powers of 1024, an optional `B`, `iB` or `/s` is allowed). */
export function parseRate(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:\/s)?$/i.exec(value.trim());
  if (!match) throw usageError(`--max-rate: expected a rate such as 50M or 512K, got '${value}'`);
  const bytes = Math.floor(Number(match[1]) * RATE_UNITS[match[2]!.toLowerCase()]!);
  if (bytes < 65_536) throw usageError(`--max-rate: at least 64K (65536 bytes per second), got '${value}'`);
  return bytes;
}

export function parsePositiveInt(flag: string, value: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) throw usageError(`${flag}: expected a whole number from 1 to ${max}, got '${value}'`);
  return Number(value);
}
