// @engram/retry benchmark: the per-retry decision (take a budget token + compute the next
// delay) and the per-request deposit, ours (local and shared budget) beside cockatiel's
// exponential backoff step in one run. `pnpm bench` from this package.
//
// Each task runs BATCH decisions; per-op time is the batch time / BATCH. The budgets are
// refilled by recording requests inside the batch (5 requests per retry at the default 20 %),
// so tryRetry keeps succeeding and the success path is what is measured; the deposit cost is
// measured on its own row and subtracted nowhere.
import { ExponentialBackoff, fullJitterGenerator } from 'cockatiel';
import { Bench } from 'tinybench';
import {
  type BackoffState,
  backoffDelay,
  backoffStep,
  INITIAL_BACKOFF_STATE,
  RetryBudget,
  SharedRetryBudget,
  seededRandom,
} from '../src/index.js';

const BATCH = 1000;
const TIME_MS = Number(process.env.RETRY_BENCH_TIME_MS ?? 1000);
const random = seededRandom(1);
const local = new RetryBudget();
const shared = new SharedRetryBudget();
const options = { baseMs: 100, maxMs: 5000, jitter: 'full' } as const;
const cockatiel = new ExponentialBackoff({
  initialDelay: 100,
  maxDelay: 5000,
  generator: fullJitterGenerator,
});
let sink = 0;

const bench = new Bench({ time: TIME_MS, warmupTime: 200 });
bench
  .add('ours RetryBudget (local): recordRequest', () => {
    for (let i = 0; i < BATCH; i++) local.recordRequest();
  })
  .add('ours SharedRetryBudget (SAB): recordRequest', () => {
    for (let i = 0; i < BATCH; i++) shared.recordRequest();
  })
  .add('ours backoffDelay (full jitter, pure, no alloc)', () => {
    for (let i = 0; i < BATCH; i++) sink += backoffDelay(i & 3, 0, options, random);
  })
  .add('ours backoffStep (pure, returns [delay, state])', () => {
    let state: BackoffState = INITIAL_BACKOFF_STATE;
    for (let i = 0; i < BATCH; i++) {
      const [delay, next] = backoffStep(state, options, random);
      sink += delay;
      state = (i & 3) === 3 ? INITIAL_BACKOFF_STATE : next;
    }
  })
  .add('cockatiel ExponentialBackoff.next().duration (full jitter)', () => {
    let b = cockatiel.next();
    for (let i = 0; i < BATCH; i++) {
      sink += b.duration;
      b = (i & 3) === 3 ? cockatiel.next() : b.next(undefined);
    }
  })
  .add('ours decision, local budget: tryRetry + backoffDelay', () => {
    for (let i = 0; i < BATCH; i++) {
      if ((i & 7) === 0) for (let r = 0; r < 5; r++) local.recordRequest();
      if (local.tryRetry()) sink += backoffDelay(i & 3, 0, options, random);
    }
  })
  .add('ours decision, shared budget: tryRetry + backoffDelay', () => {
    for (let i = 0; i < BATCH; i++) {
      if ((i & 7) === 0) for (let r = 0; r < 5; r++) shared.recordRequest();
      if (shared.tryRetry()) sink += backoffDelay(i & 3, 0, options, random);
    }
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
    'ops/s': Math.round((BATCH * 1000) / r.latency.p50).toLocaleString('en-US'),
  };
});
console.log(`@engram/retry bench, node ${process.version}, ${BATCH} operations per sample`);
console.log('decision rows include 5 recordRequest per 8 decisions to keep the budget funded');
console.table(rows);
if (sink === 42) console.log(sink);
