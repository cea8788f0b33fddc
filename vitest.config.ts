import { defineConfig } from 'vitest/config';

const shared = {
  testTimeout: 120_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      {
        test: { ...shared, name: 'tests', include: ['test/**/*.test.ts'], exclude: ['test/bench/**', 'test/e2e/**', 'node_modules/**', 'test/**/*.alone.test.ts'] },
      },
      {
        // the browser tests share one renderer build, made before any of them starts
        test: { ...shared, name: 'e2e', include: ['test/e2e/**/*.test.ts'], globalSetup: ['test/e2e/global-setup.ts'] },
      },
      {
        // Tests that time the UI thread (event-loop stalls) need the CPU to themselves: they run
        // after every other test file, one at a time.
        test: { ...shared, name: 'alone', include: ['test/**/*.alone.test.ts'], fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
