// @engram/common benchmark: the clock read every breaker and budget makes off the closed path,
// beside Date.now() and bare performance.now(), and the brand check a guard makes, beside
// `instanceof`. `pnpm bench` from this package.
import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
import { Bench } from 'tinybench';
import { EngramError, isEngramError, systemClock } from '../src/index.js';

const BATCH = 1000;
const report = new BenchReport('common');
const TIME_MS = Number(process.env.COMMON_BENCH_TIME_MS ?? benchTime(1000));
const DATE_NOW = 'Date.now() (wall clock, not monotonic)';
const INSTANCEOF = 'instanceof EngramError (misses a second copy of the package)';
const errors: unknown[] = [
  new EngramError('PoolClosed', 'closed'),
  new Error('plain'),
  { code: 'PoolClosed' },
  undefined,
];
let sink = 0;

const bench = new Bench({ time: TIME_MS, warmupTime: benchTime(200, 50) });
bench
  .add(DATE_NOW, () => {
    for (let i = 0; i < BATCH; i++) sink += Date.now();
  })
  .add('performance.now() (monotonic, per-thread origin)', () => {
    for (let i = 0; i < BATCH; i++) sink += performance.now();
  })
  .add('ours systemClock.now() (monotonic, one timeline for all threads)', () => {
    for (let i = 0; i < BATCH; i++) sink += systemClock.now();
  })
  .add(INSTANCEOF, () => {
    for (let i = 0; i < BATCH; i++) if (errors[i & 3] instanceof EngramError) sink++;
  })
  .add('ours isEngramError(e, code) (brand + code)', () => {
    for (let i = 0; i < BATCH; i++) if (isEngramError(errors[i & 3], 'PoolClosed')) sink++;
  });

await bench.run();

const rows = tinybenchRows(bench, BATCH);
report.table({
  title: `Clock read, ${BATCH} reads per sample (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: DATE_NOW,
  rows: rows.slice(0, 3),
});
report.table({
  title: `Error brand check, ${BATCH} checks per sample (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: INSTANCEOF,
  rows: rows.slice(3),
});
report.write();
if (sink === 42) console.log(sink);
