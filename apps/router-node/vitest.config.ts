import { defineConfig, mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.js';

export default mergeConfig(
  shared,
  defineConfig({
    test: {
      // Each file starts its own processes; running files one at a time keeps the 2-core box
      // from timing out health checks.
      fileParallelism: false,
    },
  }),
);
