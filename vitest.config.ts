import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['models/**/*.test.ts', '{config,contract,client,store,activities,workflows,workers,observability,cli,scripts,test}/**/*.test.ts'],
    // The parity test starts a Python process that imports torch and diffusers.
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
