// What a SIGSTOPped memory node costs, with outlier detection off and on (the defaults
// otherwise: attempt timeout 2 s, health probes every 1 s with a 0.5 s timeout, 2 to mark down).
// Per run and mode: 3 local memory nodes, a router (workers 2) built from this checkout's
// dist/main.js, 50 Recalls/s open loop over 20 spaces whose primary is n1 and 20 others; n1 is
// frozen for WINDOW_S seconds. Reports, medians over RUNS runs (modes alternate):
//   attempts  attempts the router sent to n1 while it was frozen (its /metrics counter)
//   slow      calls that took over 1 s (they waited on n1)
//   out at    when n1 stopped getting new calls: ejected (on) or marked down (off), s after SIGSTOP
//   p99       client-side p99 of the calls started while n1 was frozen, ms
//   npx tsx scripts/outlier-hang.ts
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { callMemory, MemoryServiceClient } from '@engram/proto';
import { buildRing } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import { LocalCluster } from '../src/index.js';

const RUNS = Number(process.env.RUNS ?? 3);
const WINDOW_S = Number(process.env.WINDOW_S ?? 6);
const EVERY_MS = 20; // 50 calls/s
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));

const metric = (text: string, name: string, ...match: string[]) => {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) || !match.every((m) => line.includes(m))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

interface Result {
  attempts: number;
  slow: number;
  outAtS: number;
  p99Ms: number;
  calls: number;
}

async function once(enabled: boolean): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'engram-outlier-'));
  const cluster = await LocalCluster.start(3, 2);
  const file = join(dir, 'router.json');
  writeFileSync(
    file,
    JSON.stringify({
      nodes: cluster.configs,
      workers: 2,
      vnodesPerNode: 64,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      metrics: { host: '127.0.0.1', port: 0 },
      logLevel: 'warn',
      outlier: { enabled },
    }),
  );
  const child = spawn(process.execPath, [MAIN, '--config', file], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const clients: MemoryServiceClient[] = [];
  try {
    const line = await new Promise<string>((resolve) =>
      createInterface({ input: child.stdout! }).once('line', resolve),
    );
    const { port, metricsPort } = JSON.parse(line) as { port: number; metricsPort: number };
    const scrape = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    for (;;) {
      if (metric(await scrape(), 'engram_router_node_up') === 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const ring = buildRing({ nodes: cluster.configs, vnodesPerNode: 64 });
    const all = Array.from({ length: 400 }, (_, i) => `hang/${i}`);
    const spaces = [
      ...all.filter((s) => ring.lookup(s).primary.id === 'n1').slice(0, 20),
      ...all.filter((s) => ring.lookup(s).primary.id !== 'n1').slice(0, 20),
    ];
    for (let i = 0; i < 4; i++) {
      clients.push(
        new MemoryServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
        }),
      );
    }
    const calls: Promise<number>[] = [];
    let i = 0;
    const fire = () => {
      const k = i++;
      const t0 = performance.now();
      calls.push(
        callMemory(
          clients[k % clients.length]!,
          'recall',
          { spaceId: spaces[k % spaces.length]!, cue: { text: 'x' }, limit: 1 },
          { deadline: Date.now() + 30_000 },
        ).then(
          () => performance.now() - t0,
          () => Number.POSITIVE_INFINITY,
        ),
      );
    };
    // Warm-up: connections open, every node answered.
    const warm = setInterval(fire, EVERY_MS);
    await new Promise((r) => setTimeout(r, 2000));
    clearInterval(warm);
    await Promise.all(calls.splice(0));
    const before = metric(await scrape(), 'engram_router_upstream_requests_total', 'node="n1"');

    cluster.pause('n1');
    const frozenAt = performance.now();
    const load = setInterval(fire, EVERY_MS);
    let outAtS = Number.NaN;
    const until = frozenAt + WINDOW_S * 1000;
    while (performance.now() < until) {
      const text = await scrape();
      const out = enabled
        ? metric(text, 'engram_router_node_ejected', 'node="n1"') === 1
        : metric(text, 'engram_router_node_up', 'node="n1"') === 0;
      if (out && Number.isNaN(outAtS)) outAtS = (performance.now() - frozenAt) / 1000;
      await new Promise((r) => setTimeout(r, 50));
    }
    clearInterval(load);
    const started = calls.length;
    const times = await Promise.all(calls);
    const attempts =
      metric(await scrape(), 'engram_router_upstream_requests_total', 'node="n1"') - before;
    const sorted = [...times].sort((a, b) => a - b);
    return {
      attempts,
      slow: times.filter((t) => t > 1000).length,
      outAtS,
      p99Ms: sorted[Math.floor(0.99 * (sorted.length - 1))]!,
      calls: started,
    };
  } finally {
    for (const c of clients) c.close();
    cluster.resume('n1');
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const by: Record<'off' | 'on', Result[]> = { off: [], on: [] };
for (let r = 0; r < RUNS; r++) {
  for (const mode of ['off', 'on'] as const) {
    const res = await once(mode === 'on');
    by[mode].push(res);
    console.log(`run ${r + 1} ${mode}: ${JSON.stringify(res)}`);
  }
}
console.log(`\nmedians over ${RUNS} runs, ${WINDOW_S} s frozen, 50 calls/s:`);
console.log('outlier | calls | attempts to n1 | calls > 1 s | n1 out at (s) | p99 (ms)');
for (const mode of ['off', 'on'] as const) {
  const rs = by[mode];
  const m = (f: (x: Result) => number) => median(rs.map(f));
  console.log(
    `${mode.padEnd(7)} | ${m((x) => x.calls)} | ${m((x) => x.attempts)} | ${m((x) => x.slow)} | ${m((x) => x.outAtS).toFixed(2)} | ${m((x) => x.p99Ms).toFixed(0)}`,
  );
}
