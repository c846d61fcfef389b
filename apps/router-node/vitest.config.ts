import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each file starts its own processes; running files one at a time keeps the 2-core box
    // from timing out health checks.
    fileParallelism: false,
  },
});
