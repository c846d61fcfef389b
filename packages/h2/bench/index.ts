// @engram/h2 benchmark: a unary gRPC-shaped call (request headers + 23 B body; reply headers,
// 300 B body, trailers) over loopback, client and server in this one process, with
// node:http2 on both ends (the baseline: what router-node used before) and with @engram/h2 on
// both ends, side by side in one run; one call at a time and 64 in parallel. Then the HPACK
// micro-benchmarks (bench/hpack.ts). `pnpm bench` from this package.
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { BenchReport, benchTime } from '@engram/bench-kit';
import { Bench, type Task } from 'tinybench';
import {
  encodeHeaderBlock,
  H2ClientConnection,
  H2Server,
  type H2Stream,
  type StreamHandler,
} from '../src/index.js';

const report = new BenchReport('h2');
const TIME_MS = Number(process.env.H2_BENCH_TIME_MS ?? benchTime(2000, 300));
const PARALLEL = 64;
const REQUEST = Buffer.alloc(23, 1);
const REPLY = Buffer.alloc(300, 2);
const PATH = '/engram.v1.MemoryService/Recall';

// --- node:http2 on both ends -------------------------------------------------------------
const nodeServer = http2.createServer();
nodeServer.on('stream', (stream) => {
  stream.on('data', () => {});
  stream.on('end', () => {
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(REPLY);
  });
});
nodeServer.listen(0, '127.0.0.1');
await once(nodeServer, 'listening');
const nodeClient = http2.connect(`http://127.0.0.1:${(nodeServer.address() as AddressInfo).port}`);
await once(nodeClient, 'remoteSettings');

function nodeCall(): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = nodeClient.request({
      ':method': 'POST',
      ':path': PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let bytes = 0;
    req.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    req.on('error', reject);
    req.on('close', () => (bytes === REPLY.length ? resolve() : reject(new Error('short reply'))));
    req.end(REQUEST);
  });
}

// --- @engram/h2 on both ends -------------------------------------------------------------
const REPLY_HEADERS = encodeHeaderBlock([':status', '200', 'content-type', 'application/grpc']);
const OK_TRAILERS = ['grpc-status', '0'];
const serverHandler: StreamHandler = {
  onHeaders() {},
  onData(s, _chunk, end) {
    if (end) reply(s);
  },
  onClose() {},
};
function reply(s: H2Stream): void {
  s.sendHeaders(REPLY_HEADERS, false);
  s.sendData(REPLY, false);
  s.sendTrailers(OK_TRAILERS);
}
const ourServer = new H2Server({
  onStream(s) {
    s.handler = serverHandler;
    if (s.remoteEnded) reply(s);
  },
});
ourServer.server.listen(0, '127.0.0.1');
await once(ourServer.server, 'listening');
const ourClient = H2ClientConnection.connect({
  host: '127.0.0.1',
  port: (ourServer.server.address() as AddressInfo).port,
});
await new Promise<void>((resolve) => {
  ourClient.onReady = resolve;
});
const HEADERS = [
  ':method',
  'POST',
  ':scheme',
  'http',
  ':path',
  PATH,
  ':authority',
  'bench',
  'content-type',
  'application/grpc',
  'te',
  'trailers',
];

class Call implements StreamHandler {
  bytes = 0;
  constructor(
    readonly resolve: () => void,
    readonly reject: (e: Error) => void,
  ) {}
  onHeaders(): void {}
  onData(_s: H2Stream, chunk: Buffer): void {
    this.bytes += chunk.length;
  }
  onClose(_s: H2Stream, code: number): void {
    if (code === -1 && this.bytes === REPLY.length) this.resolve();
    else this.reject(new Error(`call closed with ${code}, ${this.bytes} bytes`));
  }
}
function ourCall(): Promise<void> {
  return new Promise((resolve, reject) => {
    ourClient.request(HEADERS, REQUEST, new Call(resolve, reject));
  });
}

const parallel = (call: () => Promise<void>) => async () => {
  const calls: Promise<void>[] = [];
  for (let i = 0; i < PARALLEL; i++) calls.push(call());
  await Promise.all(calls);
};

const cpu = new Map<string, { us: number; calls: number }>();
function withCpu(name: string, calls: number, fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    const before = process.cpuUsage();
    await fn();
    const used = process.cpuUsage(before);
    const c = cpu.get(name) ?? { us: 0, calls: 0 };
    c.us += used.user + used.system;
    c.calls += calls;
    cpu.set(name, c);
  };
}

const bench = new Bench({ time: TIME_MS, warmupTime: benchTime(300, 50) });
const tasks: [string, number, () => Promise<void>][] = [
  ['node:http2 → node:http2, 1 call', 1, nodeCall],
  ['@engram/h2 → @engram/h2, 1 call', 1, ourCall],
  [`node:http2 → node:http2, ${PARALLEL} calls in parallel`, PARALLEL, parallel(nodeCall)],
  [`@engram/h2 → @engram/h2, ${PARALLEL} calls in parallel`, PARALLEL, parallel(ourCall)],
];
for (const [name, calls, fn] of tasks) bench.add(name, withCpu(name, calls, fn));
await bench.run();

function latency(task: Task) {
  const result = task.result;
  if (result === undefined || !('latency' in result))
    throw new Error(`${task.name} did not complete`);
  return result.latency;
}
const callsOf = new Map(tasks.map(([name, calls]) => [name, calls]));
const usPerCall = (t: Task, ms: number) => (ms * 1000) / callsOf.get(t.name)!;
const rowOf = (t: Task) => ({
  name: t.name,
  median: usPerCall(t, latency(t).p50),
  p99: usPerCall(t, latency(t).p99),
});
// Baseline: node:http2 on both ends, what router-node used before @engram/h2.
for (const [title, pair] of [
  ['Unary call over loopback, one at a time', bench.tasks.slice(0, 2)],
  [`Unary call over loopback, ${PARALLEL} in parallel`, bench.tasks.slice(2, 4)],
] as const) {
  report.table({
    title: `${title} (client and server in one process)`,
    unit: 'µs/call',
    baseline: pair[0]!.name,
    rows: pair.map(rowOf),
  });
}
report.table({
  title: 'CPU per call, both ends (process.cpuUsage over all samples: no p99)',
  unit: 'µs/call',
  baseline: bench.tasks[0]!.name,
  rows: bench.tasks.map((t) => {
    const c = cpu.get(t.name)!;
    return { name: t.name, median: c.us / c.calls, p99: Number.NaN };
  }),
});
report.write();

nodeClient.close();
ourClient.close();
nodeServer.close();
await ourServer.close(1000);

await import('./hpack.js');
