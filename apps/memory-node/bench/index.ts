/**
 * Direct unary latency against one memory node: the baseline the router's overhead is
 * measured against. The node runs as a child process (`node dist/main.js`) so the load
 * generator (this process, one grpc-js client) and the server never share a thread.
 *
 * Rows: health Check (the floor: an empty unary call), Recall by text and by embedding
 * (100 memories in the space, limit 10), Store in memory and with --data-dir (fdatasync per
 * batch). Each sequentially and with 64 calls in flight.
 *
 *   pnpm bench            # full
 *   BENCH_QUICK=1 pnpm bench
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { BenchReport, QUICK } from '@engram/bench-kit';
import {
  callMemory,
  checkHealth,
  HealthClient,
  type MemoryMethodName,
  MemoryServiceClient,
} from '@engram/proto';
import * as grpc from '@grpc/grpc-js';

const report = new BenchReport('memory-node');
const SEQUENTIAL_CALLS = QUICK ? 300 : 5000;
const CONCURRENT_CALLS = QUICK ? 2000 : 30000;
const IN_FLIGHT = 64;
const WARMUP_CALLS = QUICK ? 100 : 2000;
const SPACE_MEMORIES = 100;
const EMBEDDING_DIMS = 64;
const MAIN_JS = fileURLToPath(new URL('../dist/main.js', import.meta.url));

interface Child {
  address: string;
  stop(): Promise<void>;
}

async function spawnNode(args: string[]): Promise<Child> {
  const child = spawn(process.execPath, [MAIN_JS, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    void exited.then(() => reject(new Error('memory node exited before listening')));
  });
  const { address } = JSON.parse(line) as { address: string };
  return {
    address,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function vector(seed: number): number[] {
  return Array.from({ length: EMBEDDING_DIMS }, (_, i) => Math.sin(seed * 7.3 + i));
}

const WORDS = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu'.split(' ');

interface Row {
  name: string;
  mode: string;
  calls: number;
  p50: number;
  p99: number;
  mean: number;
  opsPerSec: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(
  name: string,
  call: (i: number) => Promise<unknown>,
  inFlight: number,
  calls: number,
): Promise<Row> {
  for (let i = 0; i < WARMUP_CALLS; i++) await call(i);
  const lat = new Float64Array(calls);
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (next < calls) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      await call(i);
      lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort();
  let sum = 0;
  for (const v of lat) sum += v;
  return {
    name,
    mode: inFlight === 1 ? 'sequential' : `${inFlight} in flight`,
    calls,
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
    mean: sum / calls,
    opsPerSec: calls / elapsedS,
  };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'engram-bench-'));
  const mem = await spawnNode(['--id', 'bench-mem', '--port', '0']);
  const disk = await spawnNode(['--id', 'bench-disk', '--port', '0', '--data-dir', dataDir]);
  const creds = grpc.credentials.createInsecure();
  const client = new MemoryServiceClient(mem.address, creds);
  const diskClient = new MemoryServiceClient(disk.address, creds);
  const health = new HealthClient(mem.address, creds);

  for (let i = 0; i < SPACE_MEMORIES; i++) {
    const content = `${WORDS[i % WORDS.length]} ${WORDS[(i * 5) % WORDS.length]} memory number ${i}`;
    await callMemory(client, 'store', {
      spaceId: 'bench',
      memory: { content, embedding: vector(i) },
    });
  }

  const cases: [string, (c: MemoryServiceClient, i: number) => Promise<unknown>, 'mem' | 'disk'][] =
    [
      ['health Check (floor)', () => checkHealth(health), 'mem'],
      [
        'Recall text cue',
        (c, i) =>
          callMemory(c, 'recall', {
            spaceId: 'bench',
            cue: { text: `${WORDS[i % WORDS.length]} memory` },
            limit: 10,
          }),
        'mem',
      ],
      [
        'Recall embedding cue',
        (c, i) =>
          callMemory(c, 'recall', {
            spaceId: 'bench',
            cue: { embedding: vector(i % 50) },
            limit: 10,
          }),
        'mem',
      ],
      [
        'Store (memory only)',
        (c, i) =>
          callMemory(c, 'store' satisfies MemoryMethodName, {
            spaceId: `store-${i % 16}`,
            memory: { content: `stored ${i}` },
          }),
        'mem',
      ],
      [
        'Store (--data-dir, fdatasync)',
        (c, i) =>
          callMemory(c, 'store', {
            spaceId: `store-${i % 16}`,
            memory: { content: `stored ${i}` },
          }),
        'disk',
      ],
    ];

  const rows: Row[] = [];
  for (const [name, fn, target] of cases) {
    const c = target === 'mem' ? client : diskClient;
    // fsync-bound sequential stores are slow on shared disks: fewer calls keep the run short
    const seqCalls = target === 'disk' ? Math.min(SEQUENTIAL_CALLS, 1000) : SEQUENTIAL_CALLS;
    rows.push(await measure(name, (i) => fn(c, i), 1, seqCalls));
    rows.push(await measure(name, (i) => fn(c, i), IN_FLIGHT, CONCURRENT_CALLS));
  }

  client.close();
  diskClient.close();
  health.close();
  await mem.stop();
  await disk.stop();
  rmSync(dataDir, { recursive: true, force: true });

  // Baseline: health Check, a unary round trip through the same client and server that does
  // no work, so each ratio is what a call costs beyond the gRPC floor.
  const FLOOR = 'health Check (floor)';
  const pick = (mode: string) => rows.filter((r) => r.mode === mode);
  const latency = (mode: string) =>
    pick(mode).map((r) => ({ name: r.name, median: r.p50, p99: r.p99 }));
  report.note(
    'memory-node direct unary calls: grpc-js client in this process, node in a child process',
  );
  report.table({
    title: `Sequential, 1 in flight (${SEQUENTIAL_CALLS} calls; Store to disk ${Math.min(SEQUENTIAL_CALLS, 1000)})`,
    unit: 'µs/call',
    baseline: FLOOR,
    rows: latency('sequential'),
  });
  report.table({
    title: `${IN_FLIGHT} in flight (${CONCURRENT_CALLS} calls)`,
    unit: 'µs/call',
    baseline: FLOOR,
    rows: latency(`${IN_FLIGHT} in flight`),
  });
  report.table({
    title: `Throughput, ${IN_FLIGHT} in flight (one timed run: no p99)`,
    unit: 'calls/s',
    baseline: FLOOR,
    higherIsBetter: true,
    rows: pick(`${IN_FLIGHT} in flight`).map((r) => ({
      name: r.name,
      median: r.opsPerSec,
      p99: Number.NaN,
    })),
  });
  report.write();
}

await main();
