// @engram/common benchmark: the clock read every breaker and budget makes off the closed path,
// beside Date.now() and bare performance.now(), and the brand check a guard makes, beside
// `instanceof`. `pnpm bench` from this package.
import { Bench } from 'tinybench';
import { EngramError, isEngramError, systemClock } from '../src/index.js';

const BATCH = 1000;
const TIME_MS = Number(process.env.COMMON_BENCH_TIME_MS ?? 1000);
const errors: unknown[] = [
  new EngramError('PoolClosed', 'closed'),
  new Error('plain'),
  { code: 'PoolClosed' },
  undefined,
];
let sink = 0;

const bench = new Bench({ time: TIME_MS, warmupTime: 200 });
bench
  .add('Date.now() (wall clock, not monotonic)', () => {
    for (let i = 0; i < BATCH; i++) sink += Date.now();
  })
  .add('performance.now() (monotonic, per-thread origin)', () => {
    for (let i = 0; i < BATCH; i++) sink += performance.now();
  })
  .add('ours systemClock.now() (monotonic, one timeline for all threads)', () => {
    for (let i = 0; i < BATCH; i++) sink += systemClock.now();
  })
  .add('instanceof EngramError (misses a second copy of the package)', () => {
    for (let i = 0; i < BATCH; i++) if (errors[i & 3] instanceof EngramError) sink++;
  })
  .add('ours isEngramError(e, code) (brand + code)', () => {
    for (let i = 0; i < BATCH; i++) if (isEngramError(errors[i & 3], 'PoolClosed')) sink++;
  });

await bench.run();

const rows = bench.tasks.map((task) => {
  const r = task.result;
  if (!('latency' in r)) return { task: task.name, state: r.state };
  const perOp = (ms: number) => (ms * 1e6) / BATCH;
  return {
    task: task.name,
    'median ns/op': perOp(r.latency.p50).toFixed(1),
    'p99 ns/op (per-batch mean)': perOp(r.latency.p99).toFixed(1),
  };
});
console.log(`@engram/common bench, node ${process.version}, ${BATCH} operations per sample`);
console.table(rows);
if (sink === 42) console.log(sink);
