import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // System tests own real MariaDB servers, loop devices and mounts: run files one at a time
    // so they never fight over ports, loop devices or CPU on a 2-core machine.
    fileParallelism: false,
    reporters: ['default'],
  },
});
