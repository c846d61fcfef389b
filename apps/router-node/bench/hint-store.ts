/**
 * HintStore appends: one sync per append (the baseline: each append awaited before the next)
 * against group commit at growing concurrency, then a replay (peek + ack) and a reopen.
 * Real files in a temp dir, so the numbers are the disk's: run it where the router runs.
 * Run: pnpm --filter @engram/router-node exec tsx bench/hint-store.ts [appends] [bodyBytes]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Hint, HintStore } from '../src/internal/hint-store.js';

const APPENDS = Number(process.argv[2] ?? 10_000);
const BODY_BYTES = Number(process.argv[3] ?? 500);
const SEQUENTIAL_APPENDS = Math.min(APPENDS, 1_000); // one sync each: keep the run short
const REPLAY_BATCH = 100; // hints per peek + ack

const body = Buffer.alloc(BODY_BYTES, 7);
const hint = (i: number): Hint => ({
  nodeId: 'n1',
  spaceId: 'alice/episodic',
  path: '/engram.v1.MemoryService/Store',
  body,
  createdAtMs: Date.now() + i,
});

interface Row {
  scenario: string;
  appends: number;
  'appends/s': number;
  syncs: number;
  'appends/sync': number;
  'p50 ms': number;
  'p99 ms': number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

/** `count` appends with at most `window` in flight; latency is call to resolve. */
async function run(scenario: string, count: number, window: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'engram-hint-bench-'));
  const store = await HintStore.open(dir, { maxBytesPerNode: 1024 * 1024 * 1024 });
  const latencies: number[] = [];
  const syncsBefore = store.totals().syncs;
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const t0 = performance.now();
      if ((await store.append(hint(i))) !== 'stored') throw new Error('dropped');
      latencies.push(performance.now() - t0);
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  const seconds = (performance.now() - start) / 1000;
  const syncs = store.totals().syncs - syncsBefore;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    scenario,
    appends: count,
    'appends/s': Math.round(count / seconds),
    syncs,
    'appends/sync': Math.round((count / syncs) * 10) / 10,
    'p50 ms': Math.round(percentile(latencies, 0.5) * 100) / 100,
    'p99 ms': Math.round(percentile(latencies, 0.99) * 100) / 100,
  };
}

async function replayAndReopen(): Promise<Record<string, number | string>[]> {
  const dir = mkdtempSync(join(tmpdir(), 'engram-hint-bench-'));
  const options = { maxBytesPerNode: 1024 * 1024 * 1024 };
  const store = await HintStore.open(dir, options);
  await Promise.all(Array.from({ length: APPENDS }, (_, i) => store.append(hint(i))));
  await store.close();
  let t0 = performance.now();
  const reopened = await HintStore.open(dir, options);
  const reopenMs = performance.now() - t0;
  t0 = performance.now();
  let replayed = 0;
  for (;;) {
    const batch = await reopened.peek('n1', REPLAY_BATCH);
    if (batch.length === 0) break;
    await reopened.ackThrough('n1', batch.at(-1)!.seq);
    replayed += batch.length;
  }
  const replaySeconds = (performance.now() - t0) / 1000;
  const syncs = reopened.totals().syncs;
  await reopened.close();
  rmSync(dir, { recursive: true, force: true });
  return [
    { step: `reopen a log of ${APPENDS} hints`, ms: Math.round(reopenMs * 10) / 10 },
    {
      step: `replay ${replayed} (peek + ackThrough of ${REPLAY_BATCH})`,
      'hints/s': Math.round(replayed / replaySeconds),
      syncs,
    },
  ];
}

console.log(`HintStore: ${BODY_BYTES} B bodies, one node, node ${process.version}`);
console.table([
  await run('baseline: sequential, 1 in flight (a sync each)', SEQUENTIAL_APPENDS, 1),
  await run('group commit, 16 in flight', APPENDS, 16),
  await run('group commit, 256 in flight', APPENDS, 256),
  await run(`group commit, all ${APPENDS} at once`, APPENDS, APPENDS),
]);
console.table(await replayAndReopen());
