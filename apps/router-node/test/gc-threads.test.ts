import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const GC_THREADS = fileURLToPath(new URL('../dist/internal/gc-threads.js', import.meta.url));

/**
 * A child process that (when `single`) calls useSingleThreadedGc(), then runs a worker thread
 * that allocates and keeps objects for 1.5 s (collections every few ms), and prints how many
 * CPU ticks the threads Node leaves unnamed (V8's helpers) used meanwhile.
 */
function helperTicks(single: boolean): number {
  const script = `
const { Worker } = require('node:worker_threads');
const { readdirSync, readFileSync } = require('node:fs');
const ticks = () => {
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    if (Number(tid) === process.pid) continue;
    if (readFileSync('/proc/self/task/' + tid + '/comm', 'utf8').trim() !== 'node') continue;
    const s = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    n += Number(f[11]) + Number(f[12]);
  }
  return n;
};
(async () => {
  if (${single}) (await import(${JSON.stringify(GC_THREADS)})).useSingleThreadedGc();
  const before = ticks();
  const w = new Worker(\`
    const { parentPort } = require('node:worker_threads');
    require('node:fs').writeFileSync('/proc/thread-self/comm', 'allocating');
    const keep = [];
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      for (let i = 0; i < 1000; i++) keep.push({ a: i, b: [i, i + 1] });
      if (keep.length > 200000) keep.splice(0, 100000);
    }
    parentPort.postMessage('done');
  \`, { eval: true });
  await new Promise((r) => w.once('message', r));
  console.log(ticks() - before);
  await w.terminate();
})();
`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return Number(r.stdout.trim());
}

describe.runIf(process.platform === 'linux')('useSingleThreadedGc', () => {
  it("moves a worker's collections off V8's helper threads, which do them by default", () => {
    const parallel = helperTicks(false);
    const single = helperTicks(true);
    // By default the helpers scavenge and mark beside the allocating thread (hundreds of
    // 10 ms ticks here); with the flag set at run time they do next to none.
    expect(parallel).toBeGreaterThan(10);
    expect(single).toBeLessThanOrEqual(2);
  });
});
