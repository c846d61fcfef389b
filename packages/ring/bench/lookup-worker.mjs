// Runs the lookup benchmark inside a worker thread, reading the shared table the main
// thread published: the way router workers read it.
import { parentPort, workerData } from 'node:worker_threads';
import { Bench } from 'tinybench';
import { TableReader } from '../dist/index.js';

const { buffer, keys, batch, time } = workerData;
const reader = new TableReader(buffer);
const out = new Uint16Array(reader.maxPlacementSize);
let cursor = 0;
let sink = 0;
const bench = new Bench({ time, warmupTime: 200 });
bench.add('TableReader.lookupInto (worker)', () => {
  for (let i = 0; i < batch; i++) {
    sink += reader.lookupInto(keys[cursor], out) + out[0];
    cursor = cursor + 1 === keys.length ? 0 : cursor + 1;
  }
});
await bench.run();
const task = bench.tasks[0];
parentPort.postMessage({
  name: task.name,
  p50: task.result.latency.p50,
  mean: task.result.latency.mean,
  p99: task.result.latency.p99,
  sink,
});
