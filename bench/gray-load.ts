/**
 * The gray-failure bench's load generator, a process of its own (`fork`ed by
 * `gray-failures.ts`, so its event loop is not the one scraping metrics or moving nodes).
 *
 * Open loop at a fixed rate: call k is due at start + k / rate whatever the earlier calls are
 * doing, so a slow or hung node shows as latency and errors rather than as fewer calls (no
 * coordinated omission). Each call is a Recall or a Store to a space picked by weight from the
 * plan (seeded, the same sequence every run), over one grpc-js channel to the router. Every
 * call is logged: send time, latency, status, op, space, RoutingInfo.served_by.
 *
 * Protocol (IPC): argv[2] is the LoadConfig as JSON; the process sends `{ type: 'ready' }` once
 * the channel is connected and load has started; on `{ type: 'stop' }` it stops sending, waits
 * for the calls in flight (each bounded by its deadline) and sends `{ type: 'log', log }`.
 */
import { callMemory, MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { type CallLog, emptyLog, OP } from './gray-stats.js';

export interface LoadConfig {
  /** The router's host:port. */
  readonly address: string;
  /** Calls per second, all ops together. */
  readonly rate: number;
  readonly spaces: readonly string[];
  /** RoutingInfo.served_by values, in the order the log's `served` column indexes them. */
  readonly nodeIds: readonly string[];
  /** What to send: each entry's share of the calls is its weight over the sum. */
  readonly plan: readonly {
    readonly op: number;
    readonly space: number;
    readonly weight: number;
  }[];
  /** Client deadline per call, ms. */
  readonly deadlineMs: number;
  readonly seed: number;
}

export type LoadMessage = { type: 'ready' } | { type: 'log'; log: CallLog };

/** mulberry32: a small seeded PRNG, so every run sends the same sequence of spaces. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const wallMs = () => performance.timeOrigin + performance.now();

async function run(config: LoadConfig): Promise<void> {
  const client = new MemoryServiceClient(config.address, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
  const nodeIndex = new Map(config.nodeIds.map((id, i) => [id, i]));
  const total = config.plan.reduce((n, p) => n + p.weight, 0);
  const cumulative: number[] = [];
  let acc = 0;
  for (const p of config.plan) {
    acc += p.weight / total;
    cumulative.push(acc);
  }
  const rnd = random(config.seed);
  const log = emptyLog();
  let inFlight = 0;
  let stopping = false;
  let stored = 0;
  let onIdle: (() => void) | null = null;

  const send = (scheduled: number) => {
    const r = rnd();
    let k = cumulative.findIndex((c) => r < c);
    if (k < 0) k = config.plan.length - 1;
    const { op, space } = config.plan[k]!;
    const spaceId = config.spaces[space]!;
    const t0 = wallMs();
    const late = performance.now() - scheduled;
    const deadline = Date.now() + config.deadlineMs;
    const call =
      op === OP.store
        ? callMemory(
            client,
            'store',
            {
              spaceId,
              memory: { content: `gray failure bench memory ${stored++}`, confidence: 0.5 },
            },
            { deadline },
          )
        : callMemory(client, 'recall', { spaceId, cue: { text: 'hello' }, limit: 5 }, { deadline });
    inFlight++;
    const done = (code: number, servedBy: string | undefined) => {
      log.t0.push(t0);
      log.ms.push(wallMs() - t0);
      log.code.push(code);
      log.op.push(op);
      log.space.push(space);
      log.served.push(servedBy === undefined ? -1 : (nodeIndex.get(servedBy) ?? -1));
      log.late.push(late);
      if (--inFlight === 0 && onIdle !== null) onIdle();
    };
    call.then(
      (reply) => done(0, reply.routing?.servedBy),
      (err: grpc.ServiceError) =>
        done(typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN, undefined),
    );
  };

  const started = performance.now();
  let sent = 0;
  const tick = () => {
    if (stopping) return;
    const due = Math.floor(((performance.now() - started) * config.rate) / 1000);
    while (sent < due) {
      send(started + ((sent + 1) * 1000) / config.rate);
      sent++;
    }
    setTimeout(tick, 1);
  };
  tick();
  process.send!({ type: 'ready' } satisfies LoadMessage);

  await new Promise<void>((resolve) => {
    process.on('message', (m: { type?: string }) => {
      if (m.type === 'stop') resolve();
    });
  });
  stopping = true;
  if (inFlight > 0) await new Promise<void>((resolve) => (onIdle = resolve));
  client.close();
  process.send!({ type: 'log', log } satisfies LoadMessage, () => process.exit(0));
}

if (process.send === undefined) {
  console.error('gray-load.ts is started by gray-failures.ts (fork, with an IPC channel)');
  process.exit(2);
}
// The parent going away (killed, crashed) must not leave the load running.
process.on('disconnect', () => process.exit(0));
run(JSON.parse(process.argv[2]!) as LoadConfig).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
