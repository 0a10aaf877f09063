import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Load tests (test/load/) take minutes: `make test-long` runs them with SEEDWIRE_TEST_LONG=1.
    exclude: [...configDefaults.exclude, ...(process.env['SEEDWIRE_TEST_LONG'] === '1' ? [] : ['test/load/**'])],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // System tests own real MariaDB servers, loop devices and mounts: run files one at a time
    // so they never fight over ports, loop devices or CPU on a 2-core machine.
    fileParallelism: false,
    reporters: ['default'],
  },
});
