/**
 * What every end-to-end benchmark here shares: spawned processes (stopped at exit), h2load
 * runs parsed into p50/p99/throughput, CPU and RSS from /proc, medians over rounds, and the
 * per-target measurement (warm-up, sequential, 64 in flight, fixed rate).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type BenchReport, QUICK, type Row as TableRow } from '@engram/bench-kit';
import { callMemory, MemoryServiceClient, MemoryServiceDefinition } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';

// --quick (BENCH_QUICK=1): one round of fewer calls, the same measures and tables.
export const SEQ_CALLS = Number(process.env.BENCH_SEQ ?? (QUICK ? 300 : 3000));
export const CONC_CALLS = Number(process.env.BENCH_CONC ?? (QUICK ? 2000 : 30000));
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 1 : 3));
/** Total calls/s of the fixed-rate run (4 connections, h2load --rps each); 0 = skipped. */
export const RATE = Number(process.env.BENCH_RATE ?? 10_000);
/** Seconds of the fixed-rate run: 5 s at 6k calls/s leaves 30 calls above the p999. */
export const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? (QUICK ? 1 : 5));
/**
 * Calls at 64 in flight before each measurement. Enough to bring a router-node that sat idle
 * while the other targets ran back to its steady state: its JIT-compiled code and heap settle
 * again after an idle spell (3000 calls were not: CPU per call read ~1.8x the steady figure).
 */
export const WARMUP_CALLS = Number(process.env.BENCH_WARMUP ?? (QUICK ? 300 : 20_000));
/**
 * Calls every target gets once, at 64 in flight, before its first measurement: a fresh
 * router-node's JIT settles over its first ~60,000 calls, ~80,000 with two data threads (each
 * warms its own code). CPU per call of the whole process in 20,000-call windows from start,
 * measured: 31, 17–18.5, 9.5–12.5, then 9–10 µs (one thread); 53, 30, 17.5, then 10.5 µs (two).
 * With `WARMUP_CALLS` alone a first round measured calls 23,000–53,000, some 1.6× the steady
 * figure. HAProxy, nginx and the relays need none and get the same calls.
 */
export const SETTLE_CALLS = Number(process.env.BENCH_SETTLE ?? (QUICK ? 0 : 100_000));

/** `SETTLE_CALLS` Recalls (or the method `url` names) to each of `urls`, in turn. */
export function settle(urls: readonly string[], body: string): void {
  if (SETTLE_CALLS <= 0) return;
  for (const url of urls) h2load(url, SETTLE_CALLS, 4, 16, body);
}
export const CLK_TCK = 100; // getconf CLK_TCK on Linux
export const ROUTER_MAIN = fileURLToPath(
  new URL('./main.js', import.meta.resolve('@engram/router-node')),
);
export const NODE_MAIN = fileURLToPath(
  new URL('./main.js', import.meta.resolve('@engram/memory-node')),
);

export const dir = mkdtempSync(join(tmpdir(), 'engram-bench-'));
export const children: ChildProcess[] = [];

/** Children stopped with SIGTERM at exit (nginx's master stops its workers; SIGKILL would orphan them). */
export const graceful = new Set<ChildProcess>();

function cleanupAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null)
      c.kill(graceful.has(c) ? 'SIGTERM' : 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanupAll);

export interface Spawned {
  child: ChildProcess;
  first: Record<string, unknown>;
}

/** Spawns a process and resolves with its first JSON line on stdout (other lines: GC trace). */
export function spawnJson(args: string[], env: Record<string, string> = {}): Promise<Spawned> {
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
export function rssMb(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    kb += Number(m?.[1] ?? 0);
  }
  return kb / 1024;
}

/** utime + stime of a `/proc/…/stat` line (fields 14 and 15, after the `(comm)` field). */
function statTicks(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

export function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    total += statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  }
  return total;
}

/**
 * CPU ticks of each thread of `pid`, keyed `main` (the thread whose id is the pid) or by
 * the thread's name (`/proc/<pid>/task/<tid>/comm`; threads of one name are summed).
 */
export function threadTicks(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    let name: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      name =
        Number(tid) === pid ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended between the listing and the read
    }
    byName.set(name, (byName.get(name) ?? 0) + statTicks(stat));
  }
  return byName;
}

/** `engram-data-0 10.2, main 0.3 µs/call`: the threads that used CPU between two readings. */
export function cpuPerThread(
  before: Map<string, number>,
  after: Map<string, number>,
  calls: number,
): string {
  const parts: string[] = [];
  for (const [name, ticks] of [...after].sort((a, b) => b[1] - a[1])) {
    const us = (((ticks - (before.get(name) ?? 0)) / CLK_TCK) * 1e6) / calls;
    // Node leaves its threads named after the process (V8's GC and compiler helpers, libuv's
    // pool; a router-node build before thread naming: its data plane too).
    if (us >= 0.05) parts.push(`${name === 'node' ? 'unnamed' : name} ${us.toFixed(1)}`);
  }
  return parts.length === 0 ? '' : `${parts.join(', ')} µs/call`;
}

export interface LoadResult {
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  rps: number;
  errors: number;
}

export function h2load(
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
  return {
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    p999Ms: q(0.999),
    rps,
    errors: failed + errored + (calls - non2xx),
  };
}

export interface Target {
  name: string;
  url: string;
  /** Processes whose CPU is the proxy's (empty for direct). */
  pids: () => number[];
  /** router-node's /metrics port: GC pauses of its data-plane threads. */
  metricsPort?: number;
}

export interface Row {
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
  rateP999: number;
  cpuUsPerCall: number | null;
  /** CPU per call by thread (router-node: its main thread and the rest by thread name). */
  cpuByThread: string;
  /** Resident memory of the proxy after the 64-in-flight run. */
  rssMb: number | null;
  gc: string;
  errors: number;
}

export function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Each figure the median over the rounds (GC text from the median-throughput round). */
export function medianRow(rounds: Row[]): Row {
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
    rateP999: median(rounds.map((r) => r.rateP999)),
    rps: median(rps),
    cpuUsPerCall: cpu.length > 0 ? median(cpu) : null,
    rssMb: first.rssMb === null ? null : Math.max(...rounds.map((r) => r.rssMb ?? 0)),
    gc: byRps[byRps.length >> 1]!.gc,
    cpuByThread: byRps[byRps.length >> 1]!.cpuByThread,
    errors: rounds.reduce((n, r) => n + r.errors, 0),
  };
}

export async function gcCounters(
  port: number | undefined,
): Promise<{ count: number; sum: number }> {
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

/** Calls per phase of `measure` (defaults: the BENCH_* settings). */
export interface Phases {
  readonly warmup: number;
  readonly seq: number;
  readonly conc: number;
  /** Calls/s of the fixed-rate run; 0 = skipped. */
  readonly rate: number;
}

export const DEFAULT_PHASES: Phases = Object.freeze({
  warmup: WARMUP_CALLS,
  seq: SEQ_CALLS,
  conc: CONC_CALLS,
  rate: RATE,
});

export async function measure(
  t: Target,
  body: string,
  phases: Phases = DEFAULT_PHASES,
): Promise<Row> {
  h2load(t.url, phases.warmup, 4, 16, body);
  const seq = h2load(t.url, phases.seq, 1, 1, body);
  const pids = t.pids();
  const gc0 = await gcCounters(t.metricsPort);
  const before = pids.length > 0 ? cpuTicks(pids) : 0;
  const threadsBefore = pids.length === 1 ? threadTicks(pids[0]!) : null;
  const started = performance.now();
  const conc = h2load(t.url, phases.conc, 4, 16, body);
  const wallMs = performance.now() - started;
  const after = pids.length > 0 ? cpuTicks(t.pids()) : 0;
  const threads =
    threadsBefore === null ? '' : cpuPerThread(threadsBefore, threadTicks(pids[0]!), phases.conc);
  const gc1 = await gcCounters(t.metricsPort);
  const gcMs = (gc1.sum - gc0.sum) * 1000;
  // Fixed rate, the same offered load for every path: tails compare like for like (the
  // 64-in-flight run is closed-loop, each path at its own maximum).
  const fixed =
    phases.rate > 0
      ? h2load(t.url, phases.rate * RATE_SECONDS, 4, 16, body, Math.ceil(phases.rate / 4))
      : null;
  return {
    path: t.name,
    seqP50: seq.p50Ms,
    seqP99: seq.p99Ms,
    concP50: conc.p50Ms,
    concP99: conc.p99Ms,
    rps: conc.rps,
    rateP50: fixed?.p50Ms ?? Number.NaN,
    rateP99: fixed?.p99Ms ?? Number.NaN,
    rateP999: fixed?.p999Ms ?? Number.NaN,
    cpuUsPerCall: pids.length > 0 ? (((after - before) / CLK_TCK) * 1e6) / phases.conc : null,
    rssMb: pids.length > 0 ? rssMb(t.pids()) : null,
    cpuByThread: threads,
    gc:
      t.metricsPort === undefined
        ? ''
        : `${gc1.count - gc0.count} pauses, ${gcMs.toFixed(0)} ms (${((gcMs / wallMs) * 100).toFixed(1)}% of wall), ${((gcMs * 1000) / phases.conc).toFixed(1)} µs/call`,
    errors: seq.errors + conc.errors + (fixed?.errors ?? 0),
  };
}

/**
 * The rows as narrow tables on `report`: latency sequential, at 64 in flight and at the fixed
 * rate against `direct`; throughput and proxy CPU per call against `reference` (the proxy we
 * compare with, e.g. nginx), or `direct` when there is none; then one detail line per path.
 */
export function printRows(
  report: BenchReport,
  rows: readonly Row[],
  phases: Phases,
  against: { direct: Row; reference?: Row | undefined },
): void {
  const { direct, reference } = against;
  const latency = (title: string, p50: (r: Row) => number, p99: (r: Row) => number) =>
    report.table({
      title,
      unit: 'ms/call',
      baseline: direct.path,
      rows: rows.map((r) => ({ name: r.path, median: p50(r), p99: p99(r) })),
    });
  latency(
    `Latency, sequential (1 connection, 1 stream, ${phases.seq} calls)`,
    (r) => r.seqP50,
    (r) => r.seqP99,
  );
  latency(
    `Latency, 64 in flight (4 connections x 16 streams, ${phases.conc} calls)`,
    (r) => r.concP50,
    (r) => r.concP99,
  );
  const ref = reference ?? direct;
  const proxies = rows.filter((r) => r !== direct);
  if (proxies.length > 0) {
    report.table({
      title: 'Added latency, sequential (path p50/p99 minus direct p50/p99)',
      unit: 'µs/call',
      baseline: (proxies.includes(ref) ? ref : proxies[0]!).path,
      columns: ['added p50', 'added p99'],
      rows: proxies.map((r) => ({
        name: r.path,
        median: (r.seqP50 - direct.seqP50) * 1000,
        p99: (r.seqP99 - direct.seqP99) * 1000,
      })),
    });
  }
  if (phases.rate > 0) {
    latency(
      `Latency at a fixed ${phases.rate} calls/s (${RATE_SECONDS} s)`,
      (r) => r.rateP50,
      (r) => r.rateP99,
    );
    report.table({
      title: `Tail at a fixed ${phases.rate} calls/s (${RATE_SECONDS} s, ${phases.rate * RATE_SECONDS} calls)`,
      unit: 'ms/call',
      baseline: ref.path,
      columns: ['p99', 'p999'],
      rows: rows.map((r) => ({ name: r.path, median: r.rateP99, p99: r.rateP999 })),
    });
  }
  report.table({
    title: 'Throughput, 64 in flight (median of the rounds; no p99: spread in the notes)',
    unit: 'calls/s',
    baseline: ref.path,
    higherIsBetter: true,
    rows: rows.map((r) => ({
      name: r.path,
      median: r.rps,
      p99: Number.NaN,
    })),
  });
  const cpuRows: TableRow[] = rows
    .filter((r) => r.cpuUsPerCall !== null)
    .map((r) => ({ name: r.path, median: r.cpuUsPerCall!, p99: Number.NaN }));
  const cpuBase = cpuRows.find((r) => r.name === ref.path) ?? cpuRows[0];
  if (cpuBase !== undefined) {
    report.table({
      title: 'Proxy CPU per call, 64 in flight (utime+stime / calls; one figure per run)',
      unit: 'µs/call',
      baseline: cpuBase.name,
      rows: cpuRows,
    });
  }
  for (const r of rows) {
    const parts = [`calls/s ${r.rpsRange ?? Math.round(r.rps)}`];
    if (r.rssMb !== null) parts.push(`RSS ${r.rssMb.toFixed(0)} MB`);
    if (r.cpuByThread !== '') parts.push(`CPU by thread ${r.cpuByThread}`);
    if (r.gc !== '') parts.push(`GC ${r.gc}`);
    parts.push(`${r.errors} errors`);
    report.note(`${r.path}: ${parts.join('; ')}`);
  }
}

/** True when h2load is installed; otherwise says how to get it (the benchmark is skipped). */
export function h2loadAvailable(): boolean {
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    console.log('h2load not found: skipped (apt-get install -y nghttp2-client)');
    return false;
  }
}

/**
 * node's flags router-node runs with, as its bin's shebang and package scripts start it
 * (apps/router-node/README.md: V8's GC on the allocating thread).
 */
export const ROUTER_NODE_FLAGS: readonly string[] = Object.freeze(['--single-threaded-gc']);

/**
 * Starts router-node (`main`: this build, or another one's dist/main.js) on `config` written
 * to a file, on free ports, admin off, quiet; resolves with its first stdout line.
 */
export function startRouterNode(
  config: Record<string, unknown>,
  execArgv: readonly string[] = ROUTER_NODE_FLAGS,
  main: string = ROUTER_MAIN,
): Promise<Spawned> {
  const file = join(dir, `router-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { enabled: false },
      metrics: { host: '127.0.0.1', port: 0 },
      logLevel: 'warn',
      ...config,
    }),
  );
  return spawnJson([...execArgv, main, '--config', file]);
}

/** A serialized message as one gRPC frame in a file (h2load's request body). */
export function frameFile(name: string, message: Uint8Array): string {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  const file = join(dir, name);
  writeFileSync(file, frame);
  return file;
}

/**
 * A Store of a ~40-byte memory into `spaceId` as a gRPC frame in a file (h2load's request
 * body): the replicated write the replication, profile and A/B benches send.
 */
export function storeBody(spaceId: string): string {
  return frameFile(
    `store-${spaceId.replace(/\W/g, '_')}.bin`,
    MemoryServiceDefinition.Store.requestSerialize({
      spaceId,
      memory: { content: 'a memory of about forty bytes, stored', confidence: 0.5 },
    }),
  );
}

/** A port free on 127.0.0.1 now (bound and released), for a process that must be told one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function installed(command: string, versionFlag: string): boolean {
  try {
    execFileSync(command, [versionFlag], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A proxy started for the bench: where it listens and its processes (for CPU and RSS). */
export interface StartedProxy {
  port: number;
  pids: () => number[];
}

/**
 * nginx `grpc_pass` to `upstreams` (Debian's nginx; null when it is not installed), h2 on both
 * sides, upstream keepalive and `keepalive_requests` raised so connections are reused.
 */
export async function startNginx(upstreams: readonly string[]): Promise<StartedProxy | null> {
  if (!installed('nginx', '-v')) return null;
  const prefix = join(dir, 'nginx');
  execFileSync('mkdir', ['-p', prefix]);
  // A port the kernel just handed out and took back: a random one could be any connection's
  // ephemeral port (the bench failed with EADDRINUSE that way).
  const port = await freePort();
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
  upstream memory { ${upstreams.map((a) => `server ${a};`).join(' ')} keepalive 64; keepalive_requests 1000000; }
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
  graceful.add(child);
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

/**
 * HAProxy (Debian's 2.6; null when it is not installed) forwarding gRPC to `upstreams`: h2 on
 * both sides (`proto h2`), `nbthread` threads in one process, `http-reuse always` so calls
 * share the backend connections as router-node's pool does. Round-robin over the upstreams.
 */
export async function startHaproxy(
  upstreams: readonly string[],
  threads: number,
): Promise<StartedProxy | null> {
  if (!installed('haproxy', '-v')) return null;
  const port = await freePort();
  const conf = join(dir, `haproxy-${threads}.cfg`);
  writeFileSync(
    conf,
    `global
  nbthread ${threads}
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend grpc
  bind 127.0.0.1:${port} proto h2
  default_backend memory
backend memory
  http-reuse always
${upstreams.map((a, i) => `  server n${i + 1} ${a} proto h2`).join('\n')}
`,
  );
  // -db: stay in the foreground (one process; its threads are the proxy).
  const child = spawn('haproxy', ['-db', '-f', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  await new Promise((r) => setTimeout(r, 500));
  if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode} (${conf})`);
  return { port, pids: () => [child.pid!] };
}

/**
 * A memory node (child process, data in the bench's scratch directory) holding 10 memories in
 * space `bench`, and a Recall of them as a gRPC frame in a file (h2load's request body).
 */
export async function startRecallNode(): Promise<{
  node: Spawned;
  nodeAddress: string;
  message: Uint8Array;
  body: string;
}> {
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
  try {
    for (let i = 0; i < 10; i++) {
      await callMemory(client, 'store', {
        spaceId: 'bench',
        memory: { content: `hello world memory ${i}` },
      });
    }
  } finally {
    client.close();
  }
  const message = MemoryServiceDefinition.Recall.requestSerialize({
    spaceId: 'bench',
    cue: { text: 'hello' },
    limit: 5,
  });
  return { node, nodeAddress, message, body: frameFile('recall.bin', message) };
}

/** A proxy script of this folder (`<script> <upstream host:port>`), with router-node's node flags. */
async function startScriptProxy(script: string, upstream: string): Promise<StartedProxy> {
  const proxy = await spawnJson([
    ...ROUTER_NODE_FLAGS,
    fileURLToPath(new URL(script, import.meta.url)),
    upstream,
  ]);
  const port = Number(String(proxy.first.address).split(':')[1]);
  return { port, pids: () => [proxy.child.pid!] };
}

/**
 * The Node.js floor (`node-relay.mjs`): a TCP relay to `upstream` with router-node's node
 * flags, bytes passed on as they come, nothing parsed: what any Node.js proxy pays to move a
 * call's bytes.
 */
export function startNodeRelay(upstream: string): Promise<StartedProxy> {
  return startScriptProxy('./node-relay.mjs', upstream);
}

/**
 * router-node's wire without its routing (h2-passthrough.mjs: @engram/h2 both sides, each call
 * forwarded to `upstream` as it came), started as router-node is (its node flags).
 */
export function startH2Passthrough(upstream: string): Promise<StartedProxy> {
  return startScriptProxy('./h2-passthrough.mjs', upstream);
}

/**
 * BENCH_BASELINE_ROUTER=name=/path/to/router-node/dist/main.js: another build (an older commit,
 * say) to measure side by side, with BENCH_BASELINE_NODE_FLAGS as its node flags (default none:
 * how builds before --single-threaded-gc ran). Undefined when unset or not `name=path`.
 */
export function baselineRouter(): { name: string; main: string; flags: string[] } | undefined {
  const baseline = process.env.BENCH_BASELINE_ROUTER;
  if (baseline === undefined || !baseline.includes('=')) return undefined;
  const at = baseline.indexOf('=');
  const flags = (process.env.BENCH_BASELINE_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  return { name: baseline.slice(0, at), main: baseline.slice(at + 1), flags };
}

/** In-memory memory nodes `n1..nN` on free ports, one per zone given, quiet. */
export async function startZonedNodes(
  zones: readonly string[],
): Promise<{ nodes: Spawned[]; configs: { id: string; address: string; zone: string }[] }> {
  const nodes: Spawned[] = [];
  const configs: { id: string; address: string; zone: string }[] = [];
  for (const [i, zone] of zones.entries()) {
    const id = `n${i + 1}`;
    const n = await spawnJson([
      NODE_MAIN,
      '--id',
      id,
      '--zone',
      zone,
      '--port',
      '0',
      '--log-level',
      'warn',
    ]);
    nodes.push(n);
    configs.push({ id, address: String(n.first.address), zone });
  }
  return { nodes, configs };
}
