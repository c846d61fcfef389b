/**
 * One measurement's cluster for the gray-failure bench: memory nodes (the current tree's, each
 * with a data directory so a restarted node keeps its memories), optionally each behind a
 * DelayProxy, one router-node build in front, and the load process. Every process it starts
 * it stops in `close()` (a stopped node is continued first), and the harness kills any left at
 * exit.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { join } from 'node:path';
import { callMemory, MemoryServiceClient } from '@engram/proto';
import * as grpc from '@grpc/grpc-js';
import { DelayProxy } from './gray-delay.js';
import type { LoadConfig, LoadMessage } from './gray-load.js';
import { type CallLog, parseMetrics } from './gray-stats.js';
import { dir, NODE_MAIN, type Spawned, spawnJson, startRouterNode } from './harness.js';

export const wallMs = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Pids SIGSTOPped and not yet continued, whatever cluster stopped them (continued at exit). */
const stoppedPids = new Set<number>();
// Before the harness's exit handler SIGKILLs its children: a stopped node is continued first.
process.prependListener('exit', () => {
  for (const pid of stoppedPids) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
  }
});

export interface GrayNode {
  readonly id: string;
  readonly zone: string;
  readonly port: number;
  readonly dataDir: string;
  child: ChildProcess;
  /** The proxy the router talks to instead (slow-node runs without node faults), or null. */
  readonly proxy: DelayProxy | null;
  /** host:port of the node's fault admin endpoint (slow-node runs with node faults), or null. */
  readonly admin: string | null;
}

let faultsSupported: boolean | undefined;

/**
 * True when this tree's memory node has the latency fault and its admin endpoint
 * (`--fault-latency-ms`, `--admin-listen`, `PUT /faults`); otherwise a slow node is simulated
 * with a DelayProxy in front of each node.
 */
export function nodeFaultsSupported(): boolean {
  if (faultsSupported === undefined) {
    const help = execFileSync(process.execPath, [NODE_MAIN, '--help'], { encoding: 'utf8' });
    faultsSupported = help.includes('--fault-latency-ms') && help.includes('--admin-listen');
  }
  return faultsSupported;
}

export interface ClusterOptions {
  readonly nodes: number;
  /** The router build: a router-node dist/main.js. */
  readonly routerMain: string;
  /** The router config (listen, admin, metrics and logLevel are the harness's). */
  readonly routerConfig: Record<string, unknown>;
  /**
   * Every node answers this late, ms, settable per node later (`setLatency`): the memory
   * node's own latency fault when it has one, else a DelayProxy in front of each node. Null:
   * no latency, the router talks to the nodes.
   */
  readonly latencyMs: number | null;
}

let clusters = 0;

function startNode(
  id: string,
  zone: string,
  port: number,
  dataDir: string,
  extra: string[] = [],
): Promise<Spawned> {
  return spawnJson([
    NODE_MAIN,
    ...extra,
    '--id',
    id,
    '--zone',
    zone,
    '--port',
    String(port),
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
  ]);
}

export class GrayCluster {
  readonly nodes: GrayNode[];
  readonly router: Spawned;
  readonly routerAddress: string;
  readonly metricsPort: number;
  #load: ChildProcess | null = null;

  private constructor(nodes: GrayNode[], router: Spawned) {
    this.nodes = nodes;
    this.router = router;
    this.routerAddress = String(router.first.address);
    this.metricsPort = Number(router.first.metricsPort);
  }

  static async start(o: ClusterOptions): Promise<GrayCluster> {
    const tag = `c${++clusters}`;
    const nodes: GrayNode[] = [];
    try {
      for (let i = 0; i < o.nodes; i++) {
        const id = `n${i + 1}`;
        const zone = String.fromCharCode(97 + (i % 3));
        const dataDir = join(dir, tag, id);
        const faults = o.latencyMs !== null && nodeFaultsSupported();
        const s = await startNode(
          id,
          zone,
          0,
          dataDir,
          faults
            ? ['--admin-listen', '127.0.0.1:0', '--fault-latency-ms', String(o.latencyMs)]
            : [],
        );
        const port = Number(s.first.port);
        const proxy =
          o.latencyMs === null || faults
            ? null
            : await DelayProxy.start({ host: '127.0.0.1', port }, o.latencyMs);
        const admin = faults ? String(s.first.adminAddress) : null;
        nodes.push({ id, zone, port, dataDir, child: s.child, proxy, admin });
      }
      const router = await startRouterNode(
        {
          ...o.routerConfig,
          dataDir: join(dir, tag, 'router'),
          nodes: nodes.map((n) => ({
            id: n.id,
            zone: n.zone,
            address: `127.0.0.1:${n.proxy?.port ?? n.port}`,
          })),
        },
        [],
        o.routerMain,
      );
      return new GrayCluster(nodes, router);
    } catch (err) {
      for (const n of nodes) {
        n.child.kill('SIGKILL');
        await n.proxy?.close();
      }
      throw err;
    }
  }

  /** Stores `perSpace` memories in each space through the router (replicated to every replica). */
  async seed(spaces: readonly string[], perSpace: number): Promise<void> {
    const client = new MemoryServiceClient(this.routerAddress, grpc.credentials.createInsecure());
    try {
      for (const spaceId of spaces) {
        for (let i = 0; i < perSpace; i++) {
          await callMemory(
            client,
            'store',
            { spaceId, memory: { content: `hello seeded memory ${i}`, confidence: 0.5 } },
            { deadline: Date.now() + 10_000 },
          );
        }
      }
    } finally {
      client.close();
    }
  }

  /** Waits until the router's /metrics says every node is up (a fresh router probes first). */
  async allUp(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = await this.scrape();
      if (this.nodes.every((n) => m.get(`engram_router_node_up{node="${n.id}"}`) === 1)) return;
      if (Date.now() > until) throw new Error(`nodes not all up within ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  async scrape(): Promise<Map<string, number>> {
    const url = `http://127.0.0.1:${this.metricsPort}/metrics`;
    // One retry: a keep-alive socket the server just closed fails once ("other side closed").
    const get = async () => (await fetch(url)).text();
    return parseMetrics(await get().catch(get));
  }

  /** Node `i` answers `ms` late from now on (its fault admin endpoint, or its proxy). */
  async setLatency(i: number, ms: number): Promise<void> {
    const n = this.nodes[i]!;
    if (n.proxy !== null) {
      n.proxy.delayMs = ms;
      return;
    }
    if (n.admin === null) throw new Error(`${n.id} was started without a latency`);
    const res = await fetch(`http://${n.admin}/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ latencyMs: ms }),
    });
    if (!res.ok) throw new Error(`PUT /faults on ${n.id}: ${res.status} ${await res.text()}`);
  }

  /** kill -9 of node `i`. */
  kill(i: number): void {
    this.nodes[i]!.child.kill('SIGKILL');
  }

  /** Restarts node `i` on its port and data directory; resolves with its listening moment. */
  async restart(i: number): Promise<number> {
    const n = this.nodes[i]!;
    if (n.child.exitCode === null && n.child.signalCode === null) {
      await new Promise((r) => n.child.once('exit', r));
    }
    // The port was just freed by the kill; a connection in TIME_WAIT does not hold a listener.
    const s = await startNode(n.id, n.zone, n.port, n.dataDir);
    const at = wallMs();
    n.child = s.child;
    return at;
  }

  stop(i: number): void {
    const pid = this.nodes[i]!.child.pid!;
    stoppedPids.add(pid);
    process.kill(pid, 'SIGSTOP');
  }

  cont(i: number): void {
    const pid = this.nodes[i]!.child.pid!;
    process.kill(pid, 'SIGCONT');
    stoppedPids.delete(pid);
  }

  /** Starts the load process; resolves once its load is running. */
  async startLoad(config: LoadConfig): Promise<void> {
    const child = fork(new URL('./gray-load.ts', import.meta.url), [JSON.stringify(config)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#load = child;
    await new Promise<void>((resolve, reject) => {
      child.once('message', (m: LoadMessage) =>
        m.type === 'ready' ? resolve() : reject(new Error('load: unexpected message')),
      );
      child.once('exit', (code) => reject(new Error(`load process exited ${code}`)));
    });
  }

  /** Stops the load; resolves with its call log once the calls in flight ended. */
  async stopLoad(): Promise<CallLog> {
    const child = this.#load;
    if (child === null) throw new Error('no load running');
    const log = new Promise<CallLog>((resolve, reject) => {
      child.on('message', (m: LoadMessage) => {
        if (m.type === 'log') resolve(m.log);
      });
      child.once('exit', (code) => reject(new Error(`load process exited ${code} before its log`)));
    });
    child.send({ type: 'stop' });
    const out = await log;
    this.#load = null;
    return out;
  }

  /** Stops everything it started: load, router, nodes (continued first if stopped), proxies. */
  async close(): Promise<void> {
    this.#load?.kill('SIGKILL');
    this.#load = null;
    const exits: Promise<unknown>[] = [];
    const end = (c: ChildProcess) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      exits.push(new Promise((r) => c.once('exit', r)));
      c.kill('SIGKILL');
    };
    end(this.router.child);
    for (const n of this.nodes) {
      if (stoppedPids.has(n.child.pid!)) this.cont(this.nodes.indexOf(n));
      end(n.child);
    }
    await Promise.all(exits);
    for (const n of this.nodes) await n.proxy?.close();
  }
}
