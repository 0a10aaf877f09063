import { configDefaults, defineConfig } from 'vitest/config';

// Load tests (test/load/) take minutes: `make test-long` runs them with SEEDWIRE_TEST_LONG=1.
const exclude = [...configDefaults.exclude, ...(process.env['SEEDWIRE_TEST_LONG'] === '1' ? [] : ['test/load/**'])];

const shared = { testTimeout: 60_000, hookTimeout: 120_000, exclude };

/**
 * Two lanes, each one file at a time, so tests never fight each other over ports, loop devices
 * or CPU within a lane:
 * - `host`: the system and load tests (real MariaDB servers, loop devices, mounts, network
 *   namespaces, Chromium, a thousand protocol clients): what owns host resources or loads the
 *   machine;
 * - `process`: the unit and integration tests (real processes and sockets on port 0, temporary
 *   directories, PostgreSQL and nats-server on free ports): nothing the other lane uses.
 * `npm test` runs the two lanes side by side (scripts/test-lanes.mjs): the suite spends most of
 * its time waiting on real processes, about 0.8 of a core on average, so both fit on two cores.
 * `npm run vitest -- FILES` runs the named files of either lane one at a time, as before.
 */
export default defineConfig({
  test: {
    // One worker for a run of both projects in one process: one file at a time overall.
    maxWorkers: 1,
    reporters: ['default'],
    projects: [
      { test: { ...shared, name: 'host', include: ['test/system/**/*.test.ts', 'test/load/**/*.test.ts'] } },
      { test: { ...shared, name: 'process', include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'] } },
    ],
  },
});
