/**
 * End-to-end proxy benchmark, one run, side by side against the same memory node:
 *   direct · router-node (--workers default, 0, and variants) · nginx grpc_pass
 * Load comes from h2load (nghttp2-client), a separate process, POSTing a serialized
 * Recall gRPC frame. Per path: sequential (1 connection, 1 stream) p50/p99, and 64 in flight
 * (4 connections × 16 streams) p50/p99 + throughput; proxy CPU per call from
 * /proc/<pid>/stat (utime+stime deltas over the 64-in-flight run); GC pauses of the data-plane
 * threads from router-node's own /metrics (perf_hooks 'gc' entries).
 *
 * Every target is measured BENCH_ROUNDS times, round by round (one target under load at a
 * time, the order rotated each round), and each figure is the median over the rounds; the
 * calls/s spread (min–max) shows how noisy the machine was.
 *
 * Run: pnpm --filter @engram/bench bench   (needs h2load; nginx optional)
 * Env: BENCH_SEQ (default 3000 calls), BENCH_CONC (default 30000 calls), BENCH_ROUNDS
 * (default 3), BENCH_RATE (calls/s of the fixed-rate run, default 10000, 0 = skip), BENCH_VARIANTS=part,part (only router variants whose name has one),
 * BENCH_BASELINE_ROUTER=name=/path/to/router-node/dist/main.js (another build of
 * router-node measured side by side, e.g. an older commit).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { callMemory, MemoryServiceClient, MemoryServiceDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';

const SEQ_CALLS = Number(process.env.BENCH_SEQ ?? 3000);
const CONC_CALLS = Number(process.env.BENCH_CONC ?? 30000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Total calls/s of the fixed-rate run (4 connections, h2load --rps each); 0 = skipped. */
const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const RATE_SECONDS = 3;
const WARMUP_CALLS = 3000;
const CLK_TCK = 100; // getconf CLK_TCK on Linux
const ROUTER_MAIN = fileURLToPath(new URL('./main.js', import.meta.resolve('@engram/router-node')));
const NODE_MAIN = fileURLToPath(new URL('./main.js', import.meta.resolve('@engram/memory-node')));

const dir = mkdtempSync(join(tmpdir(), 'engram-bench-'));
const children: ChildProcess[] = [];

let nginxMaster: ChildProcess | null = null;

function cleanupAll(): void {
  // SIGTERM to nginx's master: it stops its workers (SIGKILL would orphan them).
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null)
      c.kill(c === nginxMaster ? 'SIGTERM' : 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanupAll);

interface Spawned {
  child: ChildProcess;
  first: Record<string, unknown>;
}

/** Spawns a process and resolves with its first JSON line on stdout (other lines: GC trace). */
function spawnJson(args: string[], env: Record<string, string> = {}): Promise<Spawned> {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve, reject) => {
    let first: Record<string, unknown> | null = null;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (first === null && line.startsWith('{')) {
        first = JSON.parse(line) as Record<string, unknown>;
        resolve({ child, first });
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}: ${stderr}`)));
  });
}

/** Resident memory of the proxy's processes, MB (VmRSS from /proc). */
function rssMb(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    kb += Number(m?.[1] ?? 0);
  }
  return kb / 1024;
}

function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
  }
  return total;
}

interface LoadResult {
  p50Ms: number;
  p99Ms: number;
  rps: number;
  errors: number;
}

function h2load(
  url: string,
  calls: number,
  conns: number,
  streams: number,
  body: string,
  rpsPerConn = 0,
): LoadResult {
  const log = join(dir, `h2load-${Date.now()}.log`);
  const out = execFileSync(
    'h2load',
    [
      '-n',
      String(calls),
      '-c',
      String(conns),
      '-m',
      String(streams),
      '-t',
      '1',
      ...(rpsPerConn > 0 ? [`--rps=${rpsPerConn}`] : []),
      '-d',
      body,
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      `--log-file=${log}`,
      url,
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 'NaN');
  const failed = Number(/(\d+) failed/.exec(out)?.[1] ?? 'NaN');
  const errored = Number(/(\d+) errored/.exec(out)?.[1] ?? '0');
  const non2xx = Number(/(\d+) 2xx/.exec(out)?.[1] ?? 'NaN');
  const durations = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split('\t')[2]) / 1000) // columns: start µs, status, duration µs
    .sort((a, b) => a - b);
  const q = (p: number) =>
    durations[Math.min(durations.length - 1, Math.floor(p * durations.length))]!;
  return { p50Ms: q(0.5), p99Ms: q(0.99), rps, errors: failed + errored + (calls - non2xx) };
}

interface Target {
  name: string;
  url: string;
  /** Processes whose CPU is the proxy's (empty for direct). */
  pids: () => number[];
  /** router-node's /metrics port: GC pauses of its data-plane threads. */
  metricsPort?: number;
}

interface Row {
  path: string;
  /** calls/s over the rounds, `min–max` (set on the median row). */
  rpsRange?: string;
  seqP50: number;
  seqP99: number;
  concP50: number;
  concP99: number;
  rps: number;
  /** p50/p99 at a fixed RATE calls/s (NaN when skipped). */
  rateP50: number;
  rateP99: number;
  cpuUsPerCall: number | null;
  /** Resident memory of the proxy after the 64-in-flight run. */
  rssMb: number | null;
  gc: string;
  errors: number;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Each figure the median over the rounds (GC text from the median-throughput round). */
function medianRow(rounds: Row[]): Row {
  const first = rounds[0]!;
  const rps = rounds.map((r) => r.rps);
  const byRps = [...rounds].sort((a, b) => a.rps - b.rps);
  const cpu = rounds.map((r) => r.cpuUsPerCall).filter((c): c is number => c !== null);
  return {
    path: first.path,
    rpsRange: `${Math.round(Math.min(...rps))}–${Math.round(Math.max(...rps))}`,
    seqP50: median(rounds.map((r) => r.seqP50)),
    seqP99: median(rounds.map((r) => r.seqP99)),
    concP50: median(rounds.map((r) => r.concP50)),
    concP99: median(rounds.map((r) => r.concP99)),
    rateP50: median(rounds.map((r) => r.rateP50)),
    rateP99: median(rounds.map((r) => r.rateP99)),
    rps: median(rps),
    cpuUsPerCall: cpu.length > 0 ? median(cpu) : null,
    rssMb: first.rssMb === null ? null : Math.max(...rounds.map((r) => r.rssMb ?? 0)),
    gc: byRps[byRps.length >> 1]!.gc,
    errors: rounds.reduce((n, r) => n + r.errors, 0),
  };
}

async function gcCounters(port: number | undefined): Promise<{ count: number; sum: number }> {
  if (port === undefined) return { count: 0, sum: 0 };
  // One retry: fetch reuses a keep-alive socket the server may just have closed (Node's
  // http server drops idle ones after 5 s), which fails with "other side closed".
  const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const text = await scrape().catch(scrape);
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('engram_router_gc_pause_seconds_count'))
      count += Number(line.split(' ')[1]);
    if (line.startsWith('engram_router_gc_pause_seconds_sum')) sum += Number(line.split(' ')[1]);
  }
  return { count, sum };
}

async function measure(t: Target, body: string): Promise<Row> {
  h2load(t.url, WARMUP_CALLS, 4, 16, body);
  const seq = h2load(t.url, SEQ_CALLS, 1, 1, body);
  const pids = t.pids();
  const gc0 = await gcCounters(t.metricsPort);
  const before = pids.length > 0 ? cpuTicks(pids) : 0;
  const started = performance.now();
  const conc = h2load(t.url, CONC_CALLS, 4, 16, body);
  const wallMs = performance.now() - started;
  const after = pids.length > 0 ? cpuTicks(t.pids()) : 0;
  const gc1 = await gcCounters(t.metricsPort);
  const gcMs = (gc1.sum - gc0.sum) * 1000;
  // Fixed rate, the same offered load for every path: tails compare like for like (the
  // 64-in-flight run is closed-loop, each path at its own maximum).
  const fixed =
    RATE > 0 ? h2load(t.url, RATE * RATE_SECONDS, 4, 16, body, Math.ceil(RATE / 4)) : null;
  return {
    path: t.name,
    seqP50: seq.p50Ms,
    seqP99: seq.p99Ms,
    concP50: conc.p50Ms,
    concP99: conc.p99Ms,
    rps: conc.rps,
    rateP50: fixed?.p50Ms ?? Number.NaN,
    rateP99: fixed?.p99Ms ?? Number.NaN,
    cpuUsPerCall: pids.length > 0 ? (((after - before) / CLK_TCK) * 1e6) / CONC_CALLS : null,
    rssMb: pids.length > 0 ? rssMb(t.pids()) : null,
    gc:
      t.metricsPort === undefined
        ? ''
        : `${gc1.count - gc0.count} pauses, ${gcMs.toFixed(0)} ms (${((gcMs / wallMs) * 100).toFixed(1)}% of wall), ${((gcMs * 1000) / CONC_CALLS).toFixed(1)} µs/call`,
    errors: seq.errors + conc.errors + (fixed?.errors ?? 0),
  };
}

async function startRouter(
  nodeAddress: string,
  extra: Record<string, unknown>,
  execArgv: string[] = [],
  main: string = ROUTER_MAIN,
): Promise<Spawned> {
  const file = join(dir, `router-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      metrics: { host: '127.0.0.1', port: 0 },
      nodes: [{ id: 'n1', address: nodeAddress, zone: 'a' }],
      logLevel: 'warn',
      ...extra,
    }),
  );
  return spawnJson([...execArgv, main, '--config', file]);
}

function nginxAvailable(): boolean {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function startNginx(
  nodeAddress: string,
): Promise<{ port: number; pids: () => number[] } | null> {
  if (!nginxAvailable()) return null;
  const prefix = join(dir, 'nginx');
  execFileSync('mkdir', ['-p', prefix]);
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes auto;
pid ${prefix}/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream memory { server ${nodeAddress}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port} http2;
    keepalive_requests 1000000;
    http2_max_concurrent_streams 1024;
    location / { grpc_pass grpc://memory; }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', prefix, '-c', conf, '-e', 'stderr'], { stdio: 'inherit' });
  children.push(child);
  nginxMaster = child;
  await new Promise((r) => setTimeout(r, 500));
  if (child.exitCode !== null) return null;
  const pids = () => {
    const list = execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number)
      .filter((n) => n > 0);
    return [child.pid!, ...list];
  };
  return { port, pids };
}

async function checkPath(address: string, expectRouting: boolean): Promise<void> {
  const client = new MemoryServiceClient(address, grpc.credentials.createInsecure());
  try {
    const r = await callMemory(
      client,
      'recall',
      { spaceId: 'bench', cue: { text: 'hello' }, limit: 5 },
      { deadline: Date.now() + 5000 },
    );
    if (r.memories.length === 0) throw new Error(`${address}: empty recall`);
    if (expectRouting && r.routing?.strategy !== 'PrimaryWithFallback') {
      throw new Error(`${address}: no router RoutingInfo in reply`);
    }
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('h2load not found: skipped (apt-get install -y nghttp2-client)');
    return;
  }
  const node = await spawnJson([
    NODE_MAIN,
    '--id',
    'n1',
    '--port',
    '0',
    '--data-dir',
    join(dir, 'n1'),
    '--log-level',
    'warn',
  ]);
  const nodeAddress = String(node.first.address);
  const client = new MemoryServiceClient(nodeAddress, grpc.credentials.createInsecure());
  for (let i = 0; i < 10; i++) {
    await callMemory(client, 'store', {
      spaceId: 'bench',
      memory: { content: `hello world memory ${i}` },
    });
  }
  client.close();
  const body = join(dir, 'recall.bin');
  const msg = MemoryServiceDefinition.Recall.requestSerialize({
    spaceId: 'bench',
    cue: { text: 'hello' },
    limit: 5,
  });
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  writeFileSync(body, frame);

  const cores = availableParallelism();
  const targets: Target[] = [
    { name: 'direct', url: `http://${nodeAddress}/engram.v1.MemoryService/Recall`, pids: () => [] },
  ];
  const variants: [string, Record<string, unknown>, string[], string?][] = [
    ['router-node --workers 1 (default)', { workers: 1 }, []],
    ['router-node --workers 0', { workers: 0 }, []],
    [`router-node --workers ${cores}`, { workers: cores }, []],
    ['router-node --workers 1, young gen 48 MB', { workers: 1, youngGenerationMb: 48 }, []],
    ['router-node --workers 1, young gen 192 MB', { workers: 1, youngGenerationMb: 192 }, []],
    ['router-node --workers 0, semi-space 64 MB', { workers: 0 }, ['--max-semi-space-size=64']],
    [
      `router-node --workers ${cores}, young gen 192 MB`,
      { workers: cores, youngGenerationMb: 192 },
      [],
    ],
  ];

  // BENCH_VARIANTS=a,b keeps only router variants whose name contains one of the parts.
  const only = process.env.BENCH_VARIANTS?.split(',').filter((v) => v.length > 0);
  if (only !== undefined && only.length > 0) {
    for (let i = variants.length - 1; i >= 0; i--) {
      if (!only.some((o) => variants[i]![0].includes(o))) variants.splice(i, 1);
    }
  }
  const baseline = process.env.BENCH_BASELINE_ROUTER;
  if (baseline?.includes('=')) {
    // Like for like: the other build runs with the settings of the first variant kept.
    const at = baseline.indexOf('=');
    const [, extra, execArgv] = variants[0] ?? ['', { workers: 1 }, []];
    variants.push([baseline.slice(0, at), extra, execArgv, baseline.slice(at + 1)]);
  }

  const routers: Spawned[] = [];
  for (const [name, extra, execArgv, main] of variants) {
    const r = await startRouter(nodeAddress, extra, execArgv, main);
    routers.push(r);
    await checkPath(String(r.first.address), true);
    targets.push({
      name,
      url: `http://${String(r.first.address)}/engram.v1.MemoryService/Recall`,
      pids: () => [r.child.pid!],
      metricsPort: Number(r.first.metricsPort),
    });
  }
  const nginx = await startNginx(nodeAddress);
  if (nginx !== null) {
    await checkPath(`127.0.0.1:${nginx.port}`, false);
    targets.push({
      name: 'nginx grpc_pass',
      url: `http://127.0.0.1:${nginx.port}/engram.v1.MemoryService/Recall`,
      pids: nginx.pids,
    });
  } else {
    console.log('nginx not available: skipped (apt-get install -y nginx)');
  }

  // Only one proxy runs load at a time; the idle ones cost nothing measurable.
  const runs: Row[][] = targets.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (k + round) % targets.length;
      const t = targets[i]!;
      runs[i]!.push(await measure(t, body));
      process.stderr.write(`round ${round + 1}/${ROUNDS}: measured ${t.name}\n`);
    }
  }
  const rows = runs.map(medianRow);
  const direct = rows[0]!;
  const nginxRow = rows.find((r) => r.path.startsWith('nginx'));
  console.log(
    `\nEnd to end, Recall (${msg.length + 5} B request), ${SEQ_CALLS} sequential calls, ${CONC_CALLS} calls at 64 in flight (4 conns x 16 streams), h2load, ${cores} cores, Node ${process.version}; medians of ${ROUNDS} rounds`,
  );
  console.table(
    rows.map((r) => ({
      path: r.path,
      'seq p50 ms': r.seqP50.toFixed(3),
      'seq p99 ms': r.seqP99.toFixed(3),
      'added seq p50 ms': r === direct ? '' : (r.seqP50 - direct.seqP50).toFixed(3),
      'added seq p99 ms': r === direct ? '' : (r.seqP99 - direct.seqP99).toFixed(3),
      '64-in-flight p50 ms': r.concP50.toFixed(3),
      '64-in-flight p99 ms': r.concP99.toFixed(3),
      [`${RATE}/s p50 ms`]: r.rateP50.toFixed(3),
      [`${RATE}/s p99 ms`]: r.rateP99.toFixed(3),
      [`added ${RATE}/s p99 ms`]: r === direct ? '' : (r.rateP99 - direct.rateP99).toFixed(3),
      'calls/s': Math.round(r.rps),
      'calls/s min–max': r.rpsRange,
      'calls/s ÷ direct': (r.rps / direct.rps).toFixed(2),
      'calls/s ÷ nginx': nginxRow ? (r.rps / nginxRow.rps).toFixed(2) : 'n/a',
      'proxy CPU µs/call': r.cpuUsPerCall === null ? '' : r.cpuUsPerCall.toFixed(0),
      'proxy RSS MB (max)': r.rssMb === null ? '' : r.rssMb.toFixed(0),
      'GC (data plane) during 64-in-flight': r.gc,
      errors: r.errors,
    })),
  );
  for (const c of children) c.kill('SIGTERM');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
