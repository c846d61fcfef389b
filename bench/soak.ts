/**
 * Soak: router-node (built, a child process, its default workers) over a local cluster of
 * memory nodes at replication factor 3, under steady load for SOAK_MINUTES, with a node killed
 * (-9) and restarted on its port, or SIGSTOPped for 20 s, every SOAK_EVENT_EVERY_S seconds.
 *
 * Every SOAK_SAMPLE_S seconds it reads the router's /metrics and /proc (RSS, per-thread heap
 * used/total/external, fds, active handles, threads, worker restarts, pool channels); once a
 * minute, through the router's inspector, each thread's live heap (used after a full GC), and
 * it prints a row. At the end: the least-squares slope, per minute, over the last
 * min(20, SOAK_MINUTES − SOAK_WARMUP_MINUTES) minutes, and exit 1 if the slope of the live heap
 * (all threads; heap used from /metrics with SOAK_INSPECT=0) is above SOAK_HEAP_SLOPE_MB
 * (default 0.25 MB/min, why: below and in README.md), or if the router exited.
 *
 * Run: pnpm --filter @engram/bench soak    (after pnpm turbo run build; about SOAK_MINUTES + 2)
 * Env (defaults): SOAK_MINUTES 30, SOAK_WARMUP_MINUTES 2, SOAK_IDLE_MINUTES 1 (sampled after
 * the load, not in the slope), SOAK_RATE 1500 calls/s on long-lived connections, of them
 * SOAK_STORE_PER_S 50 Stores, SOAK_CHURN_PER_S 60 short-lived connections/s (one Recall each),
 * SOAK_NODES 6, SOAK_EVENT_EVERY_S 90, SOAK_DOWN_S 5 (a killed node's time down), SOAK_STOP_S
 * 20, SOAK_SAMPLE_S 10, SOAK_HEAP_SLOPE_MB 0.25, SOAK_WORKERS (router `workers`; default: the
 * router's), SOAK_ROUTER_ARGV (extra node flags for the router, space-separated), SOAK_INSPECT
 * 1 (0: no inspector, no forced GC), SOAK_SNAPSHOT_AT (minutes at which to write each thread's
 * heap snapshot, e.g. 5,28; compare two with soak-heapdiff.ts), SOAK_SNAPSHOT_DIR.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  children,
  dir,
  freePort,
  NODE_MAIN,
  type Spawned,
  spawnJson,
  startRouterNode,
} from './harness.js';
import { type LiveHeap, RouterInspector } from './soak-inspector.js';
import type { LoadConfig, LoadSnapshot } from './soak-load.js';
import {
  lastWindow,
  leastSquaresSlope,
  type Point,
  samples,
  slopeWindowMinutes,
  sum,
} from './soak-stats.js';

function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) {
    throw new Error(`${name}: expected a number ≥ 0, got ${JSON.stringify(raw)}`);
  }
  return v;
}

const MINUTES = num('SOAK_MINUTES', 30);
const WARMUP_MINUTES = num('SOAK_WARMUP_MINUTES', 2);
const IDLE_MINUTES = num('SOAK_IDLE_MINUTES', 1);
const RATE = num('SOAK_RATE', 1500);
const STORE_PER_S = num('SOAK_STORE_PER_S', 50);
const CHURN_PER_S = num('SOAK_CHURN_PER_S', 60);
const NODES = num('SOAK_NODES', 6);
const EVENT_EVERY_S = num('SOAK_EVENT_EVERY_S', 90);
const DOWN_S = num('SOAK_DOWN_S', 5);
const STOP_S = num('SOAK_STOP_S', 20);
const SAMPLE_S = num('SOAK_SAMPLE_S', 10);
const WORKERS = process.env.SOAK_WORKERS;
const ROUTER_ARGV = (process.env.SOAK_ROUTER_ARGV ?? '').split(' ').filter((a) => a !== '');
/** Live heap (after a full GC, through the router's inspector) once a minute; 0 = off. */
const INSPECT = num('SOAK_INSPECT', 1) > 0;
/** Minutes at which to write every thread's heap snapshot (e.g. "5,28"; needs the inspector). */
const SNAPSHOT_AT = new Set(
  (process.env.SOAK_SNAPSHOT_AT ?? '')
    .split(',')
    .filter((m) => m !== '')
    .map(Number),
);
const SNAPSHOT_DIR = process.env.SOAK_SNAPSHOT_DIR ?? join(tmpdir(), 'engram-soak-snapshots');
/**
 * Heap used (all threads) may grow by at most this much per minute over the slope window.
 * 0.25 MB/min at 1,500 calls/s + 60 connections/s is ~3 bytes retained per call or ~70 bytes
 * per connection: a leak of one small object per call (≥ ~50 B, 4.5 MB/min) or of any
 * per-connection state (a session holds KBs) is well above it; it is also well above the
 * regression's own noise over 20 minutes of 10-s samples (a V8 heap sampled at a random point
 * of its scavenge/mark-compact cycles; the run's figures are in README.md).
 */
const HEAP_SLOPE_MB = num('SOAK_HEAP_SLOPE_MB', 0.25);
const WINDOW_MINUTES = slopeWindowMinutes(MINUTES, WARMUP_MINUTES);
const ZONES = ['a', 'b', 'c'];
const MB = 1024 * 1024;

interface MemNode {
  readonly id: string;
  readonly zone: string;
  port: number;
  proc: Spawned;
  state: 'up' | 'killed' | 'stopped';
}

async function startNode(id: string, zone: string, port: number): Promise<Spawned> {
  const args = [NODE_MAIN, '--id', id, '--zone', zone, '--port', String(port)];
  // A killed node's port can take a moment to be free again: a few tries.
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnJson([...args, '--log-level', 'warn']);
    } catch (err) {
      if (attempt >= 10) throw err;
      await sleep(500);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** One sample of the router: /proc and /metrics. */
interface Sample {
  /** Minutes since the load started. */
  readonly t: number;
  readonly idle: boolean;
  readonly rssMb: number;
  readonly threads: number;
  readonly fds: number;
  readonly handles: number;
  /** Per thread (main, worker-N), MB. */
  readonly heapUsed: Map<string, number>;
  readonly heapTotal: Map<string, number>;
  readonly external: Map<string, number>;
  readonly workerRestarts: number;
  readonly poolChannels: number;
  readonly nodesUp: number;
  readonly breakerOpens: number;
  readonly gcPauses: number;
  /** Per thread after a full GC, MB (once a minute, with SOAK_INSPECT; else null). */
  readonly live: Map<string, number> | null;
}

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? Number.NaN);
}

function byThread(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [labels, v] of samples(text, name)) {
    out.set(/thread="([^"]*)"/.exec(labels)?.[1] ?? labels, v / MB);
  }
  return out;
}

function total(m: Map<string, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}

async function scrape(port: number): Promise<string> {
  // One retry: a keep-alive socket the server just closed fails with "other side closed".
  const get = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return get().catch(get);
}

async function sample(
  pid: number,
  metricsPort: number,
  t: number,
  idle: boolean,
  inspector: RouterInspector | null,
): Promise<Sample> {
  const text = await scrape(metricsPort);
  let opens = 0;
  for (const [labels, v] of samples(text, 'engram_router_breaker_transitions_total')) {
    if (labels.includes('to="open"')) opens += v;
  }
  return {
    t,
    idle,
    rssMb: procStatus(pid, 'VmRSS') / 1024,
    threads: procStatus(pid, 'Threads'),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    handles: sum(text, 'nodejs_active_handles_total'),
    heapUsed: byThread(text, 'engram_router_thread_heap_used_bytes'),
    heapTotal: byThread(text, 'engram_router_thread_heap_total_bytes'),
    external: byThread(text, 'engram_router_thread_external_bytes'),
    workerRestarts: sum(text, 'engram_router_worker_restarts_total'),
    poolChannels: sum(text, 'engram_router_pool_channels'),
    nodesUp: sum(text, 'engram_router_node_up'),
    breakerOpens: opens,
    gcPauses: sum(text, 'engram_router_gc_pause_seconds_count'),
    // After the scrape, so the forced GC shows in the next sample, not in this one.
    live: inspector === null ? null : liveMb(await inspector.liveHeaps()),
  };
}

function liveMb(heaps: Map<string, LiveHeap>): Map<string, number> {
  return new Map([...heaps].map(([thread, h]) => [thread, h.used / MB] as const));
}

function pad(v: string | number, width: number): string {
  return String(v).padStart(width);
}

const COLUMNS: [string, number][] = [
  ['min', 4],
  ['RSS', 6],
  ['live', 6],
  ['(per thread)', 12],
  ['heapUsed', 8],
  ['heapTot', 8],
  ['extern', 7],
  ['fds', 4],
  ['hdl', 4],
  ['thr', 4],
  ['wRst', 4],
  ['chan', 4],
  ['up', 3],
  ['brkOpen', 7],
  ['gc', 6],
  ['ok/s', 6],
  ['errs', 5],
  ['shed', 5],
  ['p50ms', 6],
  ['p99ms', 7],
  ['conns', 6],
];

function header(): string {
  return COLUMNS.map(([n, w]) => pad(n, w)).join(' ');
}

function row(s: Sample, load: LoadSnapshot | null, prev: LoadSnapshot | null, note: string) {
  const errs = (l: LoadSnapshot | null) =>
    l === null ? 0 : Object.values(l.errors).reduce((a, b) => a + b, 0);
  const perThread = [...(s.live?.values() ?? [])].map((v) => v.toFixed(1)).join('+');
  const okPerS =
    load === null ? '' : ((load.ok - (prev?.ok ?? 0)) / 60).toFixed(0).replace(/^NaN$/, '');
  const cells = [
    `${s.idle ? 'i' : ''}${Math.round(s.t)}`,
    s.rssMb.toFixed(1),
    s.live === null ? '' : total(s.live).toFixed(2),
    perThread,
    total(s.heapUsed).toFixed(1),
    total(s.heapTotal).toFixed(1),
    total(s.external).toFixed(1),
    s.fds,
    s.handles,
    s.threads,
    s.workerRestarts,
    s.poolChannels,
    s.nodesUp,
    s.breakerOpens,
    s.gcPauses,
    okPerS,
    load === null ? '' : errs(load) - errs(prev),
    load === null ? '' : load.shed - (prev?.shed ?? 0),
    load === null ? '' : load.p50Ms.toFixed(2),
    load === null ? '' : load.p99Ms.toFixed(1),
    load === null ? '' : load.churnConnections - (prev?.churnConnections ?? 0),
  ];
  return `${cells.map((c, i) => pad(c, COLUMNS[i]![1])).join(' ')}${note === '' ? '' : `  ${note}`}`;
}

class Soak {
  readonly nodes: MemNode[] = [];
  router: Spawned | null = null;
  inspector: RouterInspector | null = null;
  load: ChildProcess | null = null;
  readonly #pending: ((s: LoadSnapshot) => void)[] = [];
  #loadStopped = false;
  /** Set when the soak must stop early (the router or the load generator exited). */
  failure: string | null = null;
  readonly events: string[] = [];
  stopping = false;

  async startCluster(): Promise<void> {
    const inspectPort = INSPECT ? await freePort() : 0;
    for (let i = 0; i < NODES; i++) {
      const id = `n${i + 1}`;
      const zone = ZONES[i % ZONES.length]!;
      const proc = await startNode(id, zone, 0);
      this.nodes.push({ id, zone, port: Number(proc.first.port), proc, state: 'up' });
    }
    this.router = await startRouterNode(
      {
        nodes: this.nodes.map((n) => ({
          id: n.id,
          address: `127.0.0.1:${n.port}`,
          zone: n.zone,
        })),
        replicationFactor: 3,
        dataDir: join(dir, 'router-data'),
        ...(WORKERS === undefined ? {} : { workers: Number(WORKERS) }),
      },
      [...(inspectPort === 0 ? [] : [`--inspect=127.0.0.1:${inspectPort}`]), ...ROUTER_ARGV],
    );
    this.router.child.once('exit', (code, signal) => {
      if (!this.stopping) this.failure = `router exited (code ${code}, signal ${signal})`;
    });
    if (inspectPort !== 0) {
      const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as {
        webSocketDebuggerUrl: string;
      }[];
      this.inspector = await RouterInspector.connect(targets[0]!.webSocketDebuggerUrl);
    }
  }

  async startLoad(): Promise<void> {
    const config: LoadConfig = {
      target: String(this.router!.first.address),
      recallPerS: Math.max(0, RATE - STORE_PER_S),
      storePerS: STORE_PER_S,
      churnPerS: CHURN_PER_S,
      sessions: 4,
      recallSpaces: 200,
      storeSpaces: 200,
      seedPerSpace: 10,
      deadlineMs: 10_000,
      maxInFlight: 5_000,
    };
    const script = fileURLToPath(new URL('./soak-load.ts', import.meta.url));
    // process.execArgv carries tsx's loader, so the child runs the .ts file as this one does.
    const child = spawn(process.execPath, [...process.execArgv, script, JSON.stringify(config)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    this.load = child;
    await new Promise<void>((resolve, reject) => {
      child.on('message', (m: { type: string; message?: string }) => {
        if (m.type === 'started') resolve();
        else if (m.type === 'failed') reject(new Error(`load generator: ${m.message}`));
        else if (m.type === 'snapshot') this.#pending.shift()?.(m as LoadSnapshot);
      });
      child.once('exit', (code) => {
        reject(new Error(`load generator exited (${code}) before starting`));
        if (!this.stopping && !this.#loadStopped) {
          this.failure = `load generator exited (code ${code})`;
        }
      });
    });
  }

  loadSnapshot(message: 'snapshot' | 'stop' = 'snapshot'): Promise<LoadSnapshot> {
    if (message === 'stop') this.#loadStopped = true;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('load generator did not answer')), 10_000);
      this.#pending.push((s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.load!.send(message);
    });
  }

  /** kill -9, SIGSTOP, kill -9, ... every EVENT_EVERY_S, each on the next node in turn. */
  async runEvents(startedAt: number, endMs: number): Promise<void> {
    const kinds = ['kill', 'stop', 'kill'] as const;
    for (let k = 1; ; k++) {
      const at = k * EVENT_EVERY_S * 1000;
      const kind = kinds[(k - 1) % kinds.length]!;
      const lasts = (kind === 'kill' ? DOWN_S : STOP_S) * 1000;
      if (EVENT_EVERY_S <= 0 || at + lasts + 10_000 > endMs) return;
      await sleep(startedAt + at - performance.now());
      if (this.failure !== null || this.stopping) return;
      const node = this.nodes[(k - 1) % this.nodes.length]!;
      const minute = ((performance.now() - startedAt) / 60_000).toFixed(1);
      if (kind === 'kill') {
        node.state = 'killed';
        node.proc.child.kill('SIGKILL');
        await exited(node.proc.child);
        await sleep(DOWN_S * 1000);
        if (this.stopping) return;
        node.proc = await startNode(node.id, node.zone, node.port);
        node.state = 'up';
        this.events.push(`${minute} kill -9 ${node.id}, restarted after ${DOWN_S} s`);
      } else {
        node.state = 'stopped';
        node.proc.child.kill('SIGSTOP');
        await sleep(STOP_S * 1000);
        node.proc.child.kill('SIGCONT');
        node.state = 'up';
        this.events.push(`${minute} SIGSTOP ${node.id} for ${STOP_S} s`);
      }
    }
  }

  /** Stops the load (its last snapshot), then every process; also on failure. */
  async stop(): Promise<LoadSnapshot | null> {
    this.stopping = true;
    let last: LoadSnapshot | null = null;
    if (this.load !== null && this.load.exitCode === null && this.load.connected) {
      last = await this.loadSnapshot('stop').catch(() => null);
    }
    this.inspector?.close();
    for (const n of this.nodes) if (n.state === 'stopped') n.proc.child.kill('SIGCONT');
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    return last;
  }
}

function slopes(points: Sample[], end: number) {
  const window = points.filter((p) => !p.idle);
  const series = (pick: (s: Sample) => number): number =>
    leastSquaresSlope(
      lastWindow(
        window.map((s): Point => ({ x: s.t, y: pick(s) })).filter((p) => Number.isFinite(p.y)),
        end,
        WINDOW_MINUTES,
      ),
    );
  return {
    live: series((s) => (s.live === null ? Number.NaN : total(s.live))),
    livePerThread: [...(window.at(-1)?.live?.keys() ?? [])].map(
      (thread) => [thread, series((s) => s.live?.get(thread) ?? Number.NaN)] as const,
    ),
    heapUsed: series((s) => total(s.heapUsed)),
    rss: series((s) => s.rssMb),
    heapTotal: series((s) => total(s.heapTotal)),
    external: series((s) => total(s.external)),
    fds: series((s) => s.fds),
    handles: series((s) => s.handles),
    threads: series((s) => s.threads),
    perThread: [...(window.at(-1)?.heapUsed.keys() ?? [])].map(
      (thread) => [thread, series((s) => s.heapUsed.get(thread) ?? Number.NaN)] as const,
    ),
  };
}

async function main(): Promise<number> {
  const soak = new Soak();
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping everything the soak started`);
    soak.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await run(soak);
  } finally {
    await soak.stop();
  }
}

async function run(soak: Soak): Promise<number> {
  const load0 = loadavg()[0]!.toFixed(2);
  await soak.startCluster();
  const router = soak.router!;
  const pid = router.child.pid!;
  const metricsPort = Number(router.first.metricsPort);
  await soak.startLoad();
  const startedAt = performance.now();
  const endMs = MINUTES * 60_000;
  console.log(
    `soak: ${MINUTES} min, router-node pid ${pid} (${WORKERS === undefined ? 'default' : WORKERS} workers${ROUTER_ARGV.length > 0 ? `, ${ROUTER_ARGV.join(' ')}` : ''}) ` +
      `over ${NODES} memory nodes (RF 3); load ${RATE} calls/s on 4 connections (${STORE_PER_S} Store/s) ` +
      `+ ${CHURN_PER_S} short-lived connections/s; an event every ${EVENT_EVERY_S} s; ` +
      `slope over the last ${WINDOW_MINUTES} min; load average at start ${load0}`,
  );
  console.log(
    'sizes MB; live = heap used after a full GC, all threads (per thread: main+workers), once a ' +
      'minute through the inspector; heapUsed/heapTot/extern = all threads from /metrics (a ' +
      'point on the GC sawtooth); RSS, fds, thr from /proc; hdl = nodejs_active_handles_total',
  );
  console.log(header());
  const points: Sample[] = [];
  let prev: LoadSnapshot | null = null;
  let shownEvents = 0;
  const events = soak.runEvents(startedAt, endMs).catch((err: unknown) => {
    soak.failure = `event: ${String(err)}`;
  });
  const print = (s: Sample, load: LoadSnapshot | null) => {
    const note = soak.events.slice(shownEvents).join('; ');
    shownEvents = soak.events.length;
    console.log(row(s, load, prev, note));
    if (load !== null) prev = load;
  };
  const first = await sample(pid, metricsPort, 0, false, soak.inspector);
  points.push(first);
  print(first, await soak.loadSnapshot());
  const step = SAMPLE_S * 1000;
  const sampleAt = async (at: number, idle: boolean): Promise<Sample> => {
    await sleep(startedAt + at - performance.now());
    const minute = at % 60_000 === 0;
    const s = await sample(pid, metricsPort, at / 60_000, idle, minute ? soak.inspector : null);
    points.push(s);
    return s;
  };
  for (let at = step; at <= endMs && soak.failure === null; at += step) {
    const s = await sampleAt(at, false);
    if (at % 60_000 !== 0) continue;
    print(s, await soak.loadSnapshot());
    if (SNAPSHOT_AT.has(at / 60_000) && soak.inspector !== null) {
      mkdirSync(SNAPSHOT_DIR, { recursive: true });
      const files = await soak.inspector.heapSnapshots(join(SNAPSHOT_DIR, `minute-${at / 60_000}`));
      console.log(`heap snapshots: ${files.join(' ')}`);
    }
  }
  await events;
  if (soak.failure !== null) {
    console.error(`FAILED: ${soak.failure}`);
    return 1;
  }
  const final = await soak.loadSnapshot('stop');
  if (IDLE_MINUTES > 0) console.log(`load stopped; ${IDLE_MINUTES} min idle (not in the slopes):`);
  for (let at = endMs + step; at <= endMs + IDLE_MINUTES * 60_000; at += step) {
    const s = await sampleAt(at, true);
    if (at % 60_000 === 0) print(s, null);
  }
  if (soak.failure !== null) {
    console.error(`FAILED: ${soak.failure}`);
    return 1;
  }
  const sl = slopes(points, MINUTES);
  const errors = final.errors;
  const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
  const f = (v: number, unit: string) => `${v >= 0 ? '+' : ''}${v.toFixed(3)} ${unit}/min`;
  console.log(
    `\nEvents (${soak.events.length}): ${soak.events.join('; ')}` +
      `\nLoad: ${final.ok} calls ok, ${errorCount} gRPC errors ${JSON.stringify(errors)}, ` +
      `${final.shed} not sent (over ${5_000} in flight), ${final.churnConnections} short-lived connections, ` +
      `${final.sessionReopens} long-lived connections reopened` +
      `\nSlopes over minutes ${MINUTES - WINDOW_MINUTES}–${MINUTES} (least squares over the samples under load):` +
      `\n  live heap after a full GC (all threads, once a minute) ${f(sl.live, 'MB')} [${sl.livePerThread.map(([t, v]) => `${t} ${f(v, 'MB')}`).join(', ')}]` +
      `\n  heap used from /metrics (all threads, every ${SAMPLE_S} s) ${f(sl.heapUsed, 'MB')} [${sl.perThread.map(([t, v]) => `${t} ${f(v, 'MB')}`).join(', ')}]` +
      `\n  RSS ${f(sl.rss, 'MB')}; heap total ${f(sl.heapTotal, 'MB')}; external ${f(sl.external, 'MB')}` +
      `\n  fds ${f(sl.fds, '')}; active handles ${f(sl.handles, '')}; threads ${f(sl.threads, '')}` +
      `\nLoad average at end ${loadavg()[0]!.toFixed(2)}`,
  );
  // The verdict reads the live heap when there is one (its noise is KBs, the sawtooth's MBs).
  const [what, slope] =
    soak.inspector === null
      ? ['heap used (/metrics)', sl.heapUsed]
      : ['live heap (after a full GC)', sl.live];
  if (!(slope <= HEAP_SLOPE_MB)) {
    console.error(
      `FAILED: ${what} grows ${f(slope, 'MB')}, above the bound of ${HEAP_SLOPE_MB} MB/min`,
    );
    return 1;
  }
  console.log(`PASSED: ${what} slope ${f(slope, 'MB')} ≤ ${HEAP_SLOPE_MB} MB/min`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
