// What /metrics costs the main thread: per build (path to its dist/main.js), a router with
// workers 1 in front of 3 idle memory nodes; its process CPU (utime+stime) over an idle minute
// (the event-loop monitor and GC observer of prom-client run on the main thread), RSS, and the
// median time of 200 scrapes.
//   npx tsx scripts/scrape-cost.ts path/to/a/dist/main.js path/to/b/dist/main.js
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster } from '../src/index.js';
import { spawnScriptRouter } from './spawn-router.js';

const IDLE_S = Number(process.env.IDLE_SECONDS ?? 60);
const dir = mkdtempSync(join(tmpdir(), 'engram-scrape-'));
const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks (100/s)
};
const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

const cluster = await LocalCluster.start(3, 2);
try {
  for (const main of process.argv.slice(2)) {
    const { child, metricsPort } = await spawnScriptRouter(main, cluster.configs, dir);
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    await new Promise((r) => setTimeout(r, 3000));
    const t0 = cpuTicks(child.pid!);
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const idleMs = ((cpuTicks(child.pid!) - t0) * 10) / IDLE_S; // ms of CPU per second idle
    const rss = rssMb(child.pid!);
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 200; i++) {
      const s = performance.now();
      bytes = (await (await fetch(url)).text()).length;
      times.push(performance.now() - s);
    }
    times.sort((a, b) => a - b);
    console.log(
      `${main}\n  idle CPU ${idleMs.toFixed(2)} ms/s, RSS ${rss.toFixed(0)} MB, scrape median ${times[100]!.toFixed(2)} ms (p90 ${times[180]!.toFixed(2)} ms), ${bytes} bytes`,
    );
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
