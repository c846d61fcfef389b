// @engram/retry benchmark: the per-retry decision (take a budget token + compute the next
// delay) and the per-request deposit, ours (local and shared budget) beside cockatiel's
// exponential backoff step in one run. `pnpm bench` from this package.
//
// Each task runs BATCH operations; per-op time is the batch time / BATCH. Before each decision
// batch (untimed beforeEach hook) the budget is funded with 5 requests per retry (20 %), so
// tryRetry takes its success path; the per-request deposit has its own row.

import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
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
const report = new BenchReport('retry');
const TIME_MS = Number(process.env.RETRY_BENCH_TIME_MS ?? benchTime(1000));
const COCKATIEL = 'cockatiel ExponentialBackoff.next().duration (full jitter)';
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

const bench = new Bench({ time: TIME_MS, warmupTime: benchTime(200, 50) });
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
  .add(COCKATIEL, () => {
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

if (failed > 0) report.note(`note: ${failed} decisions found the budget empty`);
// No library we know of has a retry budget to set beside ours, so every row is read against
// the one comparable step: cockatiel's exponential backoff with full jitter.
report.table({
  title: `Retry decision and deposit, ${BATCH} operations per sample (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: COCKATIEL,
  rows: tinybenchRows(bench, BATCH),
});
report.write();
if (sink === 42) console.log(sink);
