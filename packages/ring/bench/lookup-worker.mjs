// Runs lookup benchmarks inside a worker thread, reading the shared table the main thread
// published: the way router workers read it. `module` is the build to load (ours, or a
// baseline build of another commit); `tasks` names what to time.
import { parentPort, workerData } from 'node:worker_threads';
import { Bench } from 'tinybench';

const { module, buffer, keys, batch, time, tasks } = workerData;
const { TableReader } = await import(module);
const reader = new TableReader(buffer);
const out = new Uint16Array(Math.max(16, reader.maxPlacementSize));
const extra = new Uint16Array(out.length);
let cursor = 0;
let sink = 0;
const next = () => {
  const key = keys[cursor];
  cursor = cursor + 1 === keys.length ? 0 : cursor + 1;
  return key;
};
// Each loop is written out (no shared callback) so every task is timed as a router would
// call it.
const bodies = {
  lookupInto: () => {
    for (let i = 0; i < batch; i++) sink += reader.lookupInto(next(), out) + out[0];
  },
  pendingInto: () => {
    for (let i = 0; i < batch; i++) sink += reader.pendingInto(next(), extra);
  },
  futureInto: () => {
    for (let i = 0; i < batch; i++) sink += reader.futureInto(next(), out) + out[0];
  },
  'lookupInto + pendingInto': () => {
    for (let i = 0; i < batch; i++) {
      const key = next();
      sink += reader.lookupInto(key, out) + reader.pendingInto(key, extra);
    }
  },
};
const bench = new Bench({ time, warmupTime: 200 });
for (const task of tasks) bench.add(task, bodies[task]);
await bench.run();
parentPort.postMessage({
  results: bench.tasks.map((task) => ({
    name: task.name,
    p50: task.result.latency.p50,
    mean: task.result.latency.mean,
    p99: task.result.latency.p99,
  })),
  sink,
});
