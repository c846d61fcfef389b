import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BreakerTable, ConsecutiveFailures } from '../src/index.js';

const WORKERS = 4;
const THRESHOLD = 5;
const FIXTURE = new URL('./fixtures/breaker-worker.mjs', import.meta.url);

interface Result {
  admitted: number;
  probes: number;
  transitions: [number, string, string, string][];
}

describe('BreakerTable shared by worker threads', () => {
  // Workers use the default rule, ConsecutiveFailures(5) (the table checks they agree).
  const options = {
    trip: new ConsecutiveFailures(THRESHOLD),
    halfOpenProbes: 3,
    openTimeoutMs: 1_000,
  };
  const clockWords = new Int32Array(new SharedArrayBuffer(4));
  const gate = new Int32Array(new SharedArrayBuffer(4 * 8));
  let table: BreakerTable;
  let workers: Worker[] = [];
  let round = 0;

  beforeAll(() => {
    Atomics.store(clockWords, 0, 5_000);
    const clock = { now: () => Atomics.load(clockWords, 0) };
    table = new BreakerTable({ capacity: 4, clock, ...options });
    // Trip rules are classes; workers build their own with the same configuration.
    const workerOptions = { halfOpenProbes: 3, openTimeoutMs: 1_000 };
    workers = Array.from(
      { length: WORKERS },
      () =>
        new Worker(FIXTURE, {
          workerData: {
            buffer: table.buffer,
            clockBuffer: clockWords.buffer,
            gateBuffer: gate.buffer,
            options: workerOptions,
          },
        }),
    );
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
  });

  /** Runs one task on every worker at the same instant and collects the results. */
  async function runAll(
    task: 'fail' | 'probe',
    slot: number,
    iterations: number,
  ): Promise<Result[]> {
    const gateIndex = round++;
    const ready: Promise<void>[] = [];
    const done: Promise<Result>[] = [];
    for (const worker of workers) {
      let resolveReady!: () => void;
      ready.push(new Promise((r) => (resolveReady = r)));
      done.push(
        new Promise((resolve, reject) => {
          const onMessage = (msg: { ready?: boolean; done?: boolean } & Result) => {
            if (msg.ready) return resolveReady();
            worker.off('message', onMessage);
            worker.off('error', reject);
            resolve(msg);
          };
          worker.on('message', onMessage);
          worker.once('error', reject);
        }),
      );
      worker.postMessage({ task, slot, iterations, gateIndex });
    }
    await Promise.all(ready);
    Atomics.store(gate, gateIndex, 1);
    Atomics.notify(gate, gateIndex);
    return Promise.all(done);
  }

  it('opens exactly once when every thread reports failures on the same node at once', async () => {
    const results = await runAll('fail', 2, 200);
    const opens = results
      .flatMap((r) => r.transitions)
      .filter(([, from, to]) => from === 'closed' && to === 'open');
    expect(opens).toEqual([[2, 'closed', 'open', 'consecutive-failures']]);
    expect(table.state(2)).toBe('open');
    // The shared counter saw the one transition once, whichever worker won it.
    expect(table.transitionsOf(2)).toEqual({ open: 1, halfOpen: 0, closed: 0 });
    // Each worker loops admit -> fail. Only a failure counted below the threshold before the
    // open (at most THRESHOLD - 1 of them: nothing resets the count before the open) lets a
    // worker come back for another admission; a worker's admission whose failure counts as the THRESHOLD-th or
    // later, or lands after the open, is its last: it either makes the open or fails its CAS
    // because the breaker is already open. So at most THRESHOLD - 1 + WORKERS calls get
    // through in all, whatever the interleaving, and at least THRESHOLD do.
    const admitted = results.reduce((n, r) => n + r.admitted, 0);
    expect(admitted).toBeGreaterThanOrEqual(THRESHOLD);
    expect(admitted).toBeLessThanOrEqual(THRESHOLD - 1 + WORKERS);
    expect(table.state(1)).toBe('closed');
  });

  it('after the open timeout admits exactly halfOpenProbes of many simultaneous attempts', async () => {
    Atomics.add(clockWords, 0, 1_000);
    const results = await runAll('probe', 2, 500);
    const probes = results.reduce((n, r) => n + r.probes, 0);
    expect(probes).toBe(3);
    expect(results.reduce((n, r) => n + r.admitted, 0)).toBe(3);
    const halfOpens = results
      .flatMap((r) => r.transitions)
      .filter(([, from, to]) => from === 'open' && to === 'half-open');
    expect(halfOpens).toHaveLength(1);
    expect(table.transitionsOf(2)).toEqual({ open: 1, halfOpen: 1, closed: 0 });
    expect(table.snapshotOf(2)).toMatchObject({ state: 'half-open', probesInFlight: 3 });
  });
});
