// What /metrics shows of the routing decision under load: a real router (workers 1) in front
// of 3 memory nodes, Recall calls from h2load at a fixed low rate and then saturating, and the
// engram_router_decision_duration_seconds histogram read from two scrapes around each run.
// Also times an empty region between two process.hrtime.bigint() reads (the clock's own
// overhead), hot and with the caches thrashed between readings.
//   npx tsx scripts/decision-histogram.ts [path/to/router-node/dist/main.js ...]
// (several builds: each is measured in turn, e.g. an older commit's beside this one).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MemoryServiceDefinition } from '@engram/proto';
import { LocalCluster } from '../src/index.js';
import { spawnScriptRouter } from './spawn-router.js';

const mains = process.argv.slice(2);
if (mains.length === 0) mains.push(fileURLToPath(new URL('../dist/main.js', import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), 'engram-decision-'));
const SECONDS = Number(process.env.DECISION_SECONDS ?? 20);

function frame(): string {
  const msg = MemoryServiceDefinition.Recall.requestSerialize({
    spaceId: 'decision',
    cue: { text: 'x' },
    limit: 1,
  });
  const f = Buffer.alloc(5 + msg.length);
  f.writeUInt32BE(msg.length, 1);
  f.set(msg, 5);
  const file = join(dir, 'recall.bin');
  writeFileSync(file, f);
  return file;
}

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

/** Cumulative decision buckets by le (seconds). */
function buckets(text: string): Map<number, number> {
  const out = new Map<number, number>();
  const re = /^engram_router_decision_duration_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm;
  for (const m of text.matchAll(re)) {
    out.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]));
  }
  return out;
}

function sumOf(text: string): number {
  return Number(/^engram_router_decision_duration_seconds_sum (\S+)$/m.exec(text)?.[1] ?? 'NaN');
}

/** The share of decisions per bucket between two scrapes, the median bucket and the mean. */
function summary(before: string, after: string): string {
  const a = buckets(before);
  const b = buckets(after);
  const les = [...b.keys()].sort((x, y) => x - y);
  const total = (b.get(Number.POSITIVE_INFINITY) ?? 0) - (a.get(Number.POSITIVE_INFINITY) ?? 0);
  let prev = 0;
  let median = '';
  const parts: string[] = [];
  for (const le of les) {
    const cum = (b.get(le) ?? 0) - (a.get(le) ?? 0);
    const share = (cum - prev) / total;
    prev = cum;
    if (median === '' && cum >= total / 2)
      median = le === Number.POSITIVE_INFINITY ? '+Inf' : `${le * 1e9} ns`;
    if (share >= 0.005)
      parts.push(
        `≤${le === Number.POSITIVE_INFINITY ? '+Inf' : `${le * 1e9}ns`}: ${(share * 100).toFixed(1)}%`,
      );
  }
  const mean = ((sumOf(after) - sumOf(before)) / total) * 1e9;
  return `${total} decisions, median bucket ≤ ${median}, mean ${mean.toFixed(0)} ns\n    ${parts.join('  ')}`;
}

function h2load(url: string, body: string, args: string[]): string {
  const out = execFileSync(
    'h2load',
    [
      ...args,
      '-t',
      '1',
      '-d',
      body,
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      url,
    ],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  return /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? '?';
}

function clockOverhead(): string {
  const n = 100_000;
  const hot = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    hot[i] = Number(process.hrtime.bigint() - s);
  }
  hot.sort();
  const junk = new Float64Array(4 << 20); // 32 MiB, more than the caches
  const cold = new Float64Array(500);
  for (let i = 0; i < cold.length; i++) {
    for (let j = 0; j < junk.length; j += 8) junk[j]! += 1;
    const s = process.hrtime.bigint();
    cold[i] = Number(process.hrtime.bigint() - s);
  }
  cold.sort();
  return `clock read pair (empty timed region): hot median ${hot[n >> 1]} ns p99 ${hot[Math.floor(n * 0.99)]} ns; caches thrashed between readings: median ${cold[250]} ns p99 ${cold[495]} ns`;
}

const cluster = await LocalCluster.start(3, 2);
try {
  const body = frame();
  console.log(clockOverhead());
  for (const main of mains) {
    const { child, port, metricsPort } = await spawnScriptRouter(main, cluster.configs, dir);
    const url = `http://127.0.0.1:${port}/engram.v1.MemoryService/Recall`;
    console.log(`\n${main}`);
    h2load(url, body, ['-n', '3000', '-c', '1', '-m', '1']); // warm-up
    for (const [name, args] of [
      [
        '650 calls/s, 1 connection',
        ['-n', String(650 * SECONDS), '-c', '1', '-m', '1', '--rps=650'],
      ],
      ['saturated, 4 connections × 16 streams', ['-n', String(30_000), '-c', '4', '-m', '16']],
    ] as const) {
      const before = await scrape(metricsPort);
      const rps = h2load(url, body, [...args]);
      const after = await scrape(metricsPort);
      console.log(`  ${name} (${rps} calls/s): ${summary(before, after)}`);
    }
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
