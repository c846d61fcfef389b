// @engram/breaker benchmark: "check + record success" around a no-op call, ours (shared table,
// local breaker) beside opossum and cockatiel in one run. `pnpm bench` from this package.
//
// Fairness: each task runs BATCH guarded no-op calls and the per-op time is the batch time
// divided by BATCH (a single ~20 ns op is below the timer's resolution). opossum and cockatiel
// can only guard a call through a Promise (`fire()` / `execute()`), so their rows await each
// call in turn; "ours, execute (async)" does the same with our CircuitBreaker so the promise
// overhead can be separated from the breaker's own cost. opossum is shown with its default
// per-call timeout (a timer armed and cleared on every call) and with `timeout: false`.

import { BenchReport, benchTime, tinybenchRows } from '@engram/bench-kit';
import { ConsecutiveBreaker, circuitBreaker, handleAll } from 'cockatiel';
import Opossum from 'opossum';
import { Bench } from 'tinybench';
import { BreakerTable, CircuitBreaker } from '../src/index.js';

const BATCH = 1000;
const report = new BenchReport('breaker');
const TIME_MS = Number(process.env.BREAKER_BENCH_TIME_MS ?? benchTime(1000));
const COCKATIEL = 'cockatiel execute (async, ConsecutiveBreaker(5))';
const noop = (): number => 1;
const asyncNoop = async (): Promise<number> => 1;

const table = new BreakerTable({ capacity: 1024 });
const local = new CircuitBreaker();
const opossumDefault = new Opossum(asyncNoop);
const opossumNoTimeout = new Opossum(asyncNoop, { timeout: false });
const cockatiel = circuitBreaker(handleAll, {
  halfOpenAfter: 30_000,
  breaker: new ConsecutiveBreaker(5),
});
let sink = 0;

const bench = new Bench({ time: TIME_MS, warmupTime: benchTime(200, 50) });
bench
  .add('ours BreakerTable (shared SAB): tryAcquire only', () => {
    for (let i = 0; i < BATCH; i++) sink += table.tryAcquire(i & 1023);
  })
  .add('ours BreakerTable (shared SAB): tryAcquire + call + onSuccess', () => {
    for (let i = 0; i < BATCH; i++) {
      const slot = i & 1023;
      const a = table.tryAcquire(slot);
      if (a !== 0) {
        sink += noop();
        table.onSuccess(slot, a);
      }
    }
  })
  .add('ours CircuitBreaker (local): tryAcquire + call + onSuccess', () => {
    for (let i = 0; i < BATCH; i++) {
      const a = local.tryAcquire();
      if (a !== 0) {
        sink += noop();
        local.onSuccess(a);
      }
    }
  })
  .add('ours CircuitBreaker.execute (async, awaited)', async () => {
    for (let i = 0; i < BATCH; i++) sink += await local.execute(asyncNoop);
  })
  .add('opossum fire (async, default 10 s timeout timer)', async () => {
    for (let i = 0; i < BATCH; i++) sink += (await opossumDefault.fire()) as number;
  })
  .add('opossum fire (async, timeout: false)', async () => {
    for (let i = 0; i < BATCH; i++) sink += (await opossumNoTimeout.fire()) as number;
  })
  .add(COCKATIEL, async () => {
    for (let i = 0; i < BATCH; i++) sink += await cockatiel.execute(asyncNoop);
  });

await bench.run();

report.table({
  title: `Guarded no-op call, ${BATCH} calls per sample (p99 = of per-batch means)`,
  unit: 'ns/op',
  baseline: COCKATIEL,
  rows: tinybenchRows(bench, BATCH),
});
report.write();
opossumDefault.shutdown();
opossumNoTimeout.shutdown();
if (sink === 42) console.log(sink);
