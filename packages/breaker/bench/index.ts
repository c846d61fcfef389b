// @engram/breaker benchmark: "check + record success" around a no-op call, ours (shared table,
// local breaker) beside opossum and cockatiel in one run. `pnpm bench` from this package.
//
// Fairness: each task runs BATCH guarded no-op calls and the per-op time is the batch time
// divided by BATCH (a single ~20 ns op is below the timer's resolution). opossum and cockatiel
// can only guard a call through a Promise (`fire()` / `execute()`), so their rows await each
// call in turn; "ours, execute (async)" does the same with our CircuitBreaker so the promise
// overhead can be separated from the breaker's own cost. opossum is shown with its default
// per-call timeout (a timer armed and cleared on every call) and with `timeout: false`.
import { ConsecutiveBreaker, circuitBreaker, handleAll } from 'cockatiel';
import Opossum from 'opossum';
import { Bench } from 'tinybench';
import { BreakerTable, CircuitBreaker } from '../src/index.js';

const BATCH = 1000;
const TIME_MS = Number(process.env.BREAKER_BENCH_TIME_MS ?? 1000);
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

const bench = new Bench({ time: TIME_MS, warmupTime: 200 });
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
  .add('cockatiel execute (async, ConsecutiveBreaker(5))', async () => {
    for (let i = 0; i < BATCH; i++) sink += await cockatiel.execute(asyncNoop);
  });

await bench.run();

const baseline = bench.tasks.find((t) => t.name.startsWith('cockatiel'));
const baseP50 = baseline && 'latency' in baseline.result ? baseline.result.latency.p50 : Number.NaN;
const rows = bench.tasks.map((task) => {
  const r = task.result;
  if (!('latency' in r)) return { task: task.name, state: r.state };
  const perOp = (ms: number) => (ms * 1e6) / BATCH;
  return {
    task: task.name,
    'median ns/op': perOp(r.latency.p50).toFixed(1),
    'p99 ns/op (per-batch mean)': perOp(r.latency.p99).toFixed(1),
    'ops/s': Math.round((BATCH * 1000) / r.latency.p50).toLocaleString('en-US'),
    'vs cockatiel': `${(baseP50 / r.latency.p50).toFixed(1)}x`,
    samples: r.latency.samplesCount ?? '',
  };
});
console.log(`@engram/breaker bench, node ${process.version}, ${BATCH} calls per sample`);
console.table(rows);
opossumDefault.shutdown();
opossumNoTimeout.shutdown();
if (sink === 42) console.log(sink);
