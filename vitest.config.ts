import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Integration tests start real brokers, tus servers and daemons; two cores, so two files at a time.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
