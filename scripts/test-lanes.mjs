#!/usr/bin/env node
/**
 * `npm test`'s vitest step: the two lanes of vitest.config.ts side by side, each its own
 * `vitest run --project NAME` (one file at a time within a lane). Vitest 4 runs the projects of
 * one process with one worker limit, so two lanes that are each sequential need two processes.
 *
 * Every line a lane prints is prefixed with its name, and the runner ends with one summary line
 * per lane. It exits non-zero if either lane failed; a lane that fails does not stop the other,
 * so one run shows every failure. SIGINT / SIGTERM reach both lanes.
 *
 * With arguments (`npm test -- test/unit`, `-t 'some test'`) it runs one `vitest run ARGS`
 * instead, one file at a time: a filter may match files of one lane only, and vitest fails a
 * lane that finds no file.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** SEEDWIRE_TEST_LANES_VITEST: another vitest entry (test/unit/test-entry.test.ts runs the runner on a stand-in). */
const VITEST = process.env['SEEDWIRE_TEST_LANES_VITEST'] || join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
const LANES = ['host', 'process'];
const extra = process.argv.slice(2);

function runLane(name) {
  const started = Date.now();
  const child = spawn(process.execPath, [VITEST, 'run', '--project', name], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `[${name}] `;
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(prefix + line + '\n'));
  }
  return {
    child,
    done: new Promise((resolve) => {
      child.on('error', (error) => resolve({ name, code: 1, signal: null, seconds: 0, error }));
      child.on('close', (code, signal) => resolve({ name, code, signal, seconds: (Date.now() - started) / 1000 }));
    }),
  };
}

if (extra.length > 0) {
  const child = spawn(process.execPath, [VITEST, 'run', ...extra], { cwd: ROOT, stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('close', (code) => process.exit(code ?? 1)); // null: ended by a signal
} else {
  await runLanes();
}

async function runLanes() {
  const lanes = LANES.map(runLane);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      for (const { child } of lanes) child.kill(signal);
    });
  }
  const results = await Promise.all(lanes.map((lane) => lane.done));
  let failed = false;
  for (const r of results) {
    const ok = r.code === 0;
    failed ||= !ok;
    const how = r.error ? `could not start: ${r.error.message}` : r.signal ? `killed by ${r.signal}` : ok ? 'passed' : `failed (exit ${r.code})`;
    console.log(`lane ${r.name}: ${how} in ${r.seconds.toFixed(1)} s`);
  }
  process.exit(failed ? 1 : 0);
}
