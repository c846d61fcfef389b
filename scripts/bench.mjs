#!/usr/bin/env node
// `npm run bench [-- --quick]`: every package's benchmarks, one at a time, on a machine with
// only Node.js and npm (pnpm bootstrapped like `start` and `test`; turbo builds first because
// `bench` depends on `build`). `--quick` sets BENCH_QUICK=1, which turbo passes through to each
// bench (turbo.json passThroughEnv): fewer rounds, calls and keys, the same tables, < 2 min.
// Each bench writes bench/results/<name>.json; `pnpm bench:charts` renders bench/charts/*.svg.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const KNOWN = new Set(['--quick']);
const args = process.argv.slice(2);
const unknown = args.filter((a) => !KNOWN.has(a));
if (unknown.length > 0) {
  console.error(`npm run bench: unknown argument ${unknown.join(' ')} (known: --quick)`);
  process.exit(2);
}
const quick = args.includes('--quick');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const result = spawnSync(
  process.execPath,
  [join(root, 'scripts/with-pnpm.mjs'), 'run', 'bench:all'],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...(quick ? { BENCH_QUICK: '1' } : {}) },
  },
);
if (result.error) throw result.error;
const seconds = Math.round((Date.now() - started) / 1000);
console.log(
  `\nbench: ${quick ? 'quick' : 'full'} run took ${Math.floor(seconds / 60)} min ${seconds % 60} s`,
);
process.exit(result.status ?? 1);
