import { defineConfig } from 'vitest/config';

/**
 * The test settings every package shares. Timeouts are hang detectors, not speed checks: CI
 * runs on 2 cores shared with other work, where a test doing a fixed amount of work (fuzzing a
 * thousand streams, a thousand real calls, building a ring of 40k vnodes) can take several
 * times what it takes alone. No assertion about speed lives in a test; benchmarks measure it.
 */
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
