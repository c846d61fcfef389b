// @engram/retry benchmark: the per-retry decision (take a budget token + compute the next
// delay) and the per-request deposit, ours (local and shared budget) beside cockatiel's
// exponential backoff step in one run. `pnpm bench` from this package.
//
// Each task runs BATCH operations; per-op time is the batch time / BATCH. Before each decision
// batch (untimed beforeEach hook) the budget is funded with 5 requests per retry (20 %), so
// tryRetry takes its success path; the per-request deposit has its own row.
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
let failed = 0;
// Deposits for one batch of retries at 20 %, made outside the timed window (beforeEach).
const fund = (budget: RetryBudget | SharedRetryBudget): void => {
  for (let i = 0; i < BATCH * 5; i++) budget.recordRequest();
};

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
  .add(
    'ours decision, local budget: tryRetry + backoffDelay',
    () => {
      for (let i = 0; i < BATCH; i++) {
        if (local.tryRetry()) sink += backoffDelay(i & 3, 0, options, random);
        else failed++;
      }
    },
    { beforeEach: () => fund(local) },
  )
  .add(
    'ours decision, shared budget: tryRetry + backoffDelay',
    () => {
      for (let i = 0; i < BATCH; i++) {
        if (shared.tryRetry()) sink += backoffDelay(i & 3, 0, options, random);
        else failed++;
      }
    },
    { beforeEach: () => fund(shared) },
  );

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
if (failed > 0) console.log(`note: ${failed} decisions found the budget empty`);
console.table(rows);
if (sink === 42) console.log(sink);
