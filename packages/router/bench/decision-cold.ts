// The same routing decision, timed by the onDecision hook as router-node's /metrics times it,
// three ways: back to back (hot caches: what the microbenchmark sees), with 32 MiB written
// between decisions (caches evicted), and one decision per ~1.5 ms timer tick (the thread idle
// between, as in a router at ~650 calls/s). The gap between the first and the other two is why
// /metrics shows microseconds at low call rates (apps/router-node README, decision latency).
//   npx tsx bench/decision-cold.ts
import { buildRing, TableReader, TableWriter } from '@engram/ring';
import { Router } from '../src/index.js';

const nodes = Array.from({ length: 3 }, (_, i) => ({
  id: `n${i + 1}`,
  address: `127.0.0.1:${5000 + i}`,
  zone: `z${i % 2}`,
}));
const writer = new TableWriter({ maxNodes: 64, maxTokens: 1 << 18 });
writer.publish(buildRing({ nodes, vnodesPerNode: 256 }));
const reader = new TableReader(writer.buffer);
const ns: number[] = [];
const router = new Router({ table: reader, hooks: { onDecision: (_o, _s, d) => ns.push(d) } });
const q = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.floor(a.length * p)];
for (let i = 0; i < 200_000; i++) router.routeRecall('decision'); // warm (JIT)
ns.length = 0;
for (let i = 0; i < 100_000; i++) router.routeRecall('decision');
console.log(`hot, back to back: median ${q(ns, 0.5)} ns, p99 ${q(ns, 0.99)} ns`);
const junk = new Float64Array(4 << 20);
ns.length = 0;
for (let i = 0; i < 2000; i++) {
  for (let j = 0; j < junk.length; j += 8) junk[j]! += 1; // evict the caches (32 MiB)
  router.routeRecall('decision');
}
console.log(`caches evicted before each decision: median ${q(ns, 0.5)} ns, p99 ${q(ns, 0.99)} ns`);
ns.length = 0;
await new Promise<void>((resolve) => {
  let n = 0;
  const tick = () => {
    router.routeRecall('decision');
    if (++n < 2000) setTimeout(tick, 1.5);
    else resolve();
  };
  tick();
});
console.log(
  `one decision per ~1.5 ms timer tick (idle between): median ${q(ns, 0.5)} ns, p99 ${q(ns, 0.99)} ns`,
);
