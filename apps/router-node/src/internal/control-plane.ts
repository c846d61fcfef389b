import { readFileSync } from 'node:fs';
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import type { PoolCredentials } from '@engram/pool';
import { checkHealth, HealthClient } from '@engram/proto';
import { SharedRetryBudget } from '@engram/retry';
import { buildRing, type Ring, TableWriter } from '@engram/ring';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { startAdminServer } from './admin.js';
import {
  type AssignmentConfig,
  type NodeConfig,
  type RouterNodeConfig,
  validateAssignment,
  validateNode,
} from './config.js';
import { TABLE_MAX_REPLICATION_FACTOR } from './config-caps.js';
import { DataPlane, type DataPlaneInit } from './data-plane.js';
import { ConfigError } from './errors.js';
import {
  C_DRAINING,
  C_NODE_STATE,
  C_PARTITIONED,
  controlWords,
  createStateBuffer,
  M_IN_FLIGHT,
  M_POOL_SESSIONS,
  MAX_NODE_SLOTS,
  metricsRegion,
  NODE_STATE,
  type NODE_STATE_NAMES,
} from './layout.js';
import { LocalCluster } from './local-cluster.js';
import { type ControlSnapshot, renderMetrics } from './metrics.js';
import { SocketDuplicator } from './socket-dup.js';
import type { WorkerInit, WorkerMessage } from './worker.js';

/** A crashed data-plane worker is restarted after this, doubling per recent restart… */
export const WORKER_RESTART_BASE_DELAY_MS = 100;
/** …up to this. */
export const WORKER_RESTART_MAX_DELAY_MS = 5000;
/** At most this many restarts in any `WORKER_RESTART_WINDOW_MS`; beyond, a crash is final. */
export const MAX_WORKER_RESTARTS_PER_MINUTE = 10;
export const WORKER_RESTART_WINDOW_MS = 60 * 1000;

/** Largest cluster the shared table is sized for. */
export const MAX_CLUSTER_NODES = 64;

type NodeStateName = (typeof NODE_STATE_NAMES)[number];

interface Member {
  node: NodeConfig;
  slot: number;
  state: NodeStateName;
  /** Consecutive probe results in the current direction (+ ok, − failed). */
  streak: number;
  probe: HealthClient;
  probing: boolean;
}

/** A view of the routing table for the admin API and the demo. */
export interface TableView {
  readonly epoch: number;
  readonly partitioned: boolean;
  readonly replicationFactor: number;
  readonly vnodesPerNode: number;
  readonly localNodeId: string | null;
  readonly nodes: ReadonlyArray<{
    id: string;
    address: string;
    zone: string;
    state: NodeStateName;
    breaker: string;
    slot: number;
  }>;
  readonly assignments: readonly AssignmentConfig[];
}

/** A running router-node. */
export interface RouterNode {
  readonly port: number;
  readonly address: string;
  readonly adminPort: number | null;
  readonly metricsPort: number | null;
  readonly workers: number;
  readonly config: RouterNodeConfig;
  /** The zero-config child-process cluster, when one was started. */
  readonly localCluster: LocalCluster | null;
  table(): TableView;
  metricsText(): string;
  /** Validated, atomic membership/assignment changes (the admin API calls these). */
  addNode(node: unknown): number;
  removeNode(id: string): number;
  drainNode(id: string, undrain?: boolean): number;
  assignSpace(assignment: unknown, clear?: boolean): number;
  /** Replaces the membership (SIGHUP): adds, removes and re-addresses nodes in one publish. */
  reloadMembership(nodes: readonly NodeConfig[]): number;
  /** Stops accepting, drains in-flight calls up to the grace period, stops everything. */
  close(): Promise<void>;
}

function readPem(path: string | null): Buffer | undefined {
  return path === null ? undefined : readFileSync(path);
}

function upstreamCredentials(cfg: RouterNodeConfig): PoolCredentials {
  const t = cfg.pool.tls;
  if (t === null) return { kind: 'insecure' };
  const c: { kind: 'tls'; ca?: Buffer; cert?: Buffer; key?: Buffer; serverName?: string } = {
    kind: 'tls',
  };
  const ca = readPem(t.ca);
  const cert = readPem(t.cert);
  const key = readPem(t.key);
  if (ca !== undefined) c.ca = ca;
  if (cert !== undefined) c.cert = cert;
  if (key !== undefined) c.key = key;
  if (t.serverName !== null) c.serverName = t.serverName;
  return c as PoolCredentials;
}

function pemBuffer(v: string | Buffer | undefined): Buffer | null {
  return v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v;
}

/** Starts the control plane, the data plane (workers or main thread), admin and metrics. */
export async function startRouterNode(config: RouterNodeConfig, log: Logger): Promise<RouterNode> {
  let localCluster: LocalCluster | null = null;
  let cfg = config;
  if (cfg.nodes.length === 0) {
    localCluster = await LocalCluster.start(
      cfg.localCluster.nodes,
      cfg.localCluster.zones,
      cfg.localCluster.dataDir,
    );
    cfg = { ...cfg, nodes: localCluster.configs };
    for (const n of cfg.nodes)
      log.info({ event: 'local-node', ...n }, `started local memory node ${n.id}`);
    const ids = new Set(cfg.nodes.map((n) => n.id));
    cfg.assignments.forEach((a, i) => {
      validateAssignment(a, `assignments[${i}]`, ids);
    });
  }
  try {
    return await start(cfg, log, localCluster);
  } catch (err) {
    await localCluster?.stop();
    throw err;
  }
}

async function start(
  cfg: RouterNodeConfig,
  log: Logger,
  localCluster: LocalCluster | null,
): Promise<RouterNode> {
  const threads = Math.max(1, cfg.workers);
  const stateBuffer = createStateBuffer(threads);
  const control = controlWords(stateBuffer);
  const maxTokens = Math.min(1 << 22, MAX_CLUSTER_NODES * cfg.vnodesPerNode);
  const writer = new TableWriter({
    maxNodes: MAX_CLUSTER_NODES,
    maxTokens,
    maxReplicationFactor: TABLE_MAX_REPLICATION_FACTOR,
  });
  const breakerOptions = {
    trip: new ConsecutiveFailures(cfg.router.breakerThreshold),
    openTimeoutMs: cfg.router.breakerTimeoutMs,
  };
  const breakers = new BreakerTable({ capacity: MAX_NODE_SLOTS, ...breakerOptions });
  const budget = new SharedRetryBudget({ ...cfg.retryBudget });
  const upstream = upstreamCredentials(cfg);
  const probeCredentials =
    upstream.kind === 'insecure'
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(
          pemBuffer(upstream.ca),
          pemBuffer(upstream.key),
          pemBuffer(upstream.cert),
        );
  const probeOptions: grpc.ClientOptions =
    upstream.kind === 'tls' && upstream.serverName !== undefined
      ? { 'grpc.ssl_target_name_override': upstream.serverName }
      : {};

  const members = new Map<string, Member>();
  let assignments: AssignmentConfig[] = [...cfg.assignments];
  const freeSlots: number[] = [];
  let nextSlot = 0;
  let partitioned = false;
  let closed = false;

  const allocSlot = (): number => {
    const reused = freeSlots.pop();
    if (reused !== undefined) {
      breakers.reset(reused);
      return reused;
    }
    if (nextSlot >= MAX_NODE_SLOTS)
      throw new ConfigError('nodes', nextSlot, 'too many node slots used');
    return nextSlot++;
  };

  const newMember = (node: NodeConfig): Member => ({
    node,
    slot: allocSlot(),
    state: 'up',
    streak: 0,
    probe: new HealthClient(node.address, probeCredentials, probeOptions),
    probing: false,
  });

  /** Builds the ring for a prospective membership; throws (nothing applied) when invalid. */
  const buildFor = (nodes: readonly NodeConfig[], assigns: readonly AssignmentConfig[]): Ring => {
    if (nodes.length > MAX_CLUSTER_NODES) {
      throw new ConfigError('nodes', nodes.length, `at most ${MAX_CLUSTER_NODES} nodes`);
    }
    if (nodes.length === 0) throw new ConfigError('nodes', [], 'the last node cannot be removed');
    return buildRing({
      nodes: nodes.map((n) => ({ id: n.id, address: n.address, zone: n.zone })),
      replicationFactor: cfg.replicationFactor,
      vnodesPerNode: cfg.vnodesPerNode,
      assignments: assigns,
    });
  };

  let ring = buildFor(cfg.nodes, assignments);
  for (const n of cfg.nodes) members.set(n.id, newMember(n));

  const recomputePartition = (): void => {
    const total = members.size;
    let reachable = 0;
    for (const m of members.values()) if (m.state !== 'down') reachable++;
    const now = total > 0 && reachable < Math.floor(total / 2) + 1;
    if (now !== partitioned) {
      partitioned = now;
      log.warn(
        { event: 'partition', partitioned, reachable, total },
        partitioned
          ? `partitioned: ${reachable}/${total} nodes reachable, routing LocalOnly`
          : `partition healed: ${reachable}/${total} nodes reachable`,
      );
    }
  };

  /** Writes node states and the partition flag, then publishes the table (see layout.ts). */
  const publish = (reason: string): number => {
    recomputePartition();
    for (const m of members.values()) {
      Atomics.store(control, C_NODE_STATE + m.slot, NODE_STATE[m.state]);
    }
    Atomics.store(control, C_PARTITIONED, partitioned ? 1 : 0);
    const slots = new Map<string, number>();
    for (const m of members.values()) slots.set(m.node.id, m.slot);
    const epoch = writer.publish(ring, { slots });
    log.info(
      {
        event: 'table-publish',
        epoch,
        reason,
        nodes: [...members.values()].map((m) => `${m.node.id}:${m.state}`),
        partitioned,
        assignments: assignments.length,
      },
      `published table epoch ${epoch} (${reason})`,
    );
    return epoch;
  };
  publish('start');

  // ---- data plane -------------------------------------------------------------------------
  const ingressTls =
    cfg.tls === null
      ? null
      : {
          cert: readFileSync(cfg.tls.cert),
          key: readFileSync(cfg.tls.key),
          ...(cfg.tls.clientCa !== null ? { ca: readFileSync(cfg.tls.clientCa) } : {}),
        };
  const baseInit = (thread: number): DataPlaneInit => ({
    thread,
    table: writer.buffer,
    breakers: breakers.buffer,
    budget: budget.buffer,
    state: stateBuffer,
    config: cfg,
    ingressTls,
    upstreamCredentials: upstream,
  });
  /** Live data-plane workers by thread index (null while one is being restarted). */
  const workers: (Worker | null)[] = [];
  let workerRestarts = 0;
  const restartTimes: number[] = [];
  let dup: SocketDuplicator | null = null;
  let closing = false;
  let mainPlane: DataPlane | null = null;
  let port: number;
  const workerUrl = new URL('./worker.js', import.meta.url);
  const resourceLimits =
    cfg.youngGenerationMb > 0 ? { maxYoungGenerationSizeMb: cfg.youngGenerationMb } : undefined;
  const spawnWorker = (init: WorkerInit): Promise<{ worker: Worker; port: number; fd: number }> => {
    const worker = new Worker(workerUrl, {
      workerData: init,
      ...(resourceLimits !== undefined ? { resourceLimits } : {}),
    });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`data-plane worker exited with ${code}`));
      worker.once('error', reject);
      worker.once('exit', onExit);
      worker.once('message', (msg: WorkerMessage) => {
        worker.off('error', reject);
        worker.off('exit', onExit);
        worker.on('error', (err) => log.error({ err }, 'data-plane worker error'));
        if (msg.type === 'listening') resolve({ worker, port: msg.port, fd: msg.fd });
        else {
          void worker.terminate();
          reject(new Error(msg.type === 'error' ? msg.message : 'unexpected worker message'));
        }
      });
    });
  };
  /**
   * Restarts a worker that exited while the router is running, on a fresh duplicate of the
   * listening socket, with backoff and at most MAX_WORKER_RESTARTS_PER_MINUTE.
   */
  const onWorkerExit = (thread: number, worker: Worker, code: number): void => {
    if (workers[thread] !== worker) return;
    workers[thread] = null;
    if (closing) return;
    // The dead thread's gauges would stay stuck at their last values.
    const region = metricsRegion(stateBuffer, thread);
    region[M_IN_FLIGHT] = 0;
    region.fill(0, M_POOL_SESSIONS, M_POOL_SESSIONS + MAX_NODE_SLOTS);
    const now = Date.now();
    while (restartTimes.length > 0 && restartTimes[0]! <= now - WORKER_RESTART_WINDOW_MS)
      restartTimes.shift();
    if (restartTimes.length >= MAX_WORKER_RESTARTS_PER_MINUTE || dup === null) {
      log.error(
        { event: 'worker-exit', thread, code, restarts: restartTimes.length },
        `data-plane worker ${thread} exited with ${code}; not restarted (${restartTimes.length} restarts in the last minute)`,
      );
      return;
    }
    const delayMs = Math.min(
      WORKER_RESTART_MAX_DELAY_MS,
      WORKER_RESTART_BASE_DELAY_MS * 2 ** restartTimes.length,
    );
    restartTimes.push(now);
    log.error(
      { event: 'worker-exit', thread, code, restartInMs: delayMs },
      `data-plane worker ${thread} exited with ${code}; restarting in ${delayMs} ms`,
    );
    const d = dup;
    setTimeout(() => {
      if (closing) return;
      d.duplicate()
        .then((fd) => spawnWorker({ ...baseInit(thread), listen: { fd } }))
        .then(
          (w) => {
            if (closing) {
              void w.worker.terminate();
              return;
            }
            workerRestarts++;
            watch(thread, w.worker);
            log.warn(
              { event: 'worker-restart', thread, restarts: workerRestarts },
              `data-plane worker ${thread} restarted`,
            );
          },
          (err: unknown) => {
            log.error({ event: 'worker-restart-failed', thread, err }, 'worker restart failed');
            // Counts as another exit: retried with a longer delay, within the cap.
            workers[thread] = worker;
            onWorkerExit(thread, worker, -1);
          },
        );
    }, delayMs).unref();
  };
  const watch = (thread: number, worker: Worker): void => {
    workers[thread] = worker;
    worker.once('exit', (code) => onWorkerExit(thread, worker, code));
  };
  try {
    if (cfg.workers === 0) {
      mainPlane = new DataPlane(baseInit(0), log.child({ thread: 0 }));
      port = await mainPlane.listen(cfg.listen);
    } else {
      const first = await spawnWorker({ ...baseInit(0), listen: cfg.listen });
      watch(0, first.worker);
      port = first.port;
      if (first.fd < 0) throw new Error('cannot share the listening socket');
      // Each thread gets its own fd for the socket, so one exiting closes only its own.
      dup = await SocketDuplicator.start(first.fd);
      for (let t = 1; t < cfg.workers; t++) {
        const w = await spawnWorker({ ...baseInit(t), listen: { fd: await dup.duplicate() } });
        watch(t, w.worker);
      }
    }
  } catch (err) {
    closing = true;
    await Promise.all(workers.map((w) => w?.terminate()));
    dup?.close();
    for (const m of members.values()) m.probe.close();
    throw err;
  }

  // Tests only (NODE_ENV=test): SIGUSR2 crashes the first live worker, to test restarts.
  const onTestCrash = () => workers.find((w) => w !== null)?.postMessage({ type: 'test-crash' });
  if (process.env.NODE_ENV === 'test' && cfg.workers > 0) process.on('SIGUSR2', onTestCrash);

  // ---- health checks ------------------------------------------------------------------------
  const h = cfg.health;
  const probeOne = async (m: Member): Promise<void> => {
    if (m.probing) return;
    m.probing = true;
    let ok = false;
    try {
      const res = await checkHealth(m.probe, '', { deadline: Date.now() + h.timeoutMs });
      ok = res.status === 'SERVING';
    } catch {
      ok = false;
    } finally {
      m.probing = false;
    }
    if (closed || members.get(m.node.id) !== m) return;
    m.streak = ok ? Math.max(1, m.streak + 1) : Math.min(-1, m.streak - 1);
    if (m.state === 'up' && m.streak <= -h.unhealthyThreshold) {
      m.state = 'down';
      log.warn({ event: 'node-down', node: m.node.id }, `node ${m.node.id} marked down`);
      publish(`node ${m.node.id} down`);
    } else if (m.state === 'down' && m.streak >= h.healthyThreshold) {
      m.state = 'up';
      breakers.reset(m.slot);
      log.info({ event: 'node-up', node: m.node.id }, `node ${m.node.id} marked up`);
      publish(`node ${m.node.id} up`);
    }
  };
  const healthTimer = setInterval(() => {
    for (const m of members.values()) void probeOne(m);
  }, h.intervalMs);
  healthTimer.unref();
  for (const m of members.values()) void probeOne(m);

  // ---- membership changes (admin API, SIGHUP) -----------------------------------------------
  const nodeIds = (): Set<string> => new Set(members.keys());
  const view = (): TableView => ({
    epoch: writer.epoch,
    partitioned,
    replicationFactor: ring.replicationFactor,
    vnodesPerNode: ring.vnodesPerNode,
    localNodeId: cfg.localNodeId,
    nodes: [...members.values()]
      .sort((a, b) => (a.node.id < b.node.id ? -1 : 1))
      .map((m) => ({
        id: m.node.id,
        address: m.node.address,
        zone: m.node.zone,
        state: m.state,
        breaker: breakers.state(m.slot),
        slot: m.slot,
      })),
    assignments: [...assignments],
  });
  const memberNodes = (): NodeConfig[] => [...members.values()].map((m) => m.node);

  const addNode = (raw: unknown): number => {
    const node = validateNode(raw, 'node');
    if (members.has(node.id)) throw new ConfigError('node.id', node.id, 'already a member');
    const next = buildFor([...memberNodes(), node], assignments);
    const m = newMember(node);
    members.set(node.id, m);
    ring = next;
    const epoch = publish(`add ${node.id}`);
    void probeOne(m);
    return epoch;
  };
  const removeNode = (id: string): number => {
    const m = members.get(id);
    if (m === undefined) throw new ConfigError('id', id, 'not a member');
    if (id === cfg.localNodeId) throw new ConfigError('id', id, 'is the localNodeId');
    const used = assignments.find((a) => a.primary === id || a.replicas.includes(id));
    if (used !== undefined) {
      throw new ConfigError('id', id, `is used by the assignment of space ${used.spaceId}`);
    }
    const next = buildFor(
      memberNodes().filter((n) => n.id !== id),
      assignments,
    );
    members.delete(id);
    m.probe.close();
    ring = next;
    const epoch = publish(`remove ${id}`);
    freeSlots.push(m.slot);
    return epoch;
  };
  const drainNode = (id: string, undrain = false): number => {
    const m = members.get(id);
    if (m === undefined) throw new ConfigError('id', id, 'not a member');
    if (undrain) {
      if (m.state !== 'draining') throw new ConfigError('id', id, 'is not draining');
      m.state = m.streak < 0 ? 'down' : 'up';
    } else {
      if (m.state === 'draining') throw new ConfigError('id', id, 'is already draining');
      m.state = 'draining';
    }
    return publish(`${undrain ? 'undrain' : 'drain'} ${id}`);
  };
  const assignSpace = (raw: unknown, clear = false): number => {
    if (clear) {
      const spaceId = (raw as { spaceId?: unknown })?.spaceId;
      if (typeof spaceId !== 'string' || !assignments.some((a) => a.spaceId === spaceId)) {
        throw new ConfigError('spaceId', spaceId, 'has no assignment to clear');
      }
      const nextAssignments = assignments.filter((a) => a.spaceId !== spaceId);
      ring = buildFor(memberNodes(), nextAssignments);
      assignments = nextAssignments;
      return publish(`unassign ${spaceId}`);
    }
    const a = validateAssignment(raw, 'assignment', nodeIds());
    const nextAssignments = [...assignments.filter((x) => x.spaceId !== a.spaceId), a];
    const next = buildFor(memberNodes(), nextAssignments);
    assignments = nextAssignments;
    ring = next;
    return publish(`assign ${a.spaceId} -> ${a.primary}`);
  };
  const reloadMembership = (nodes: readonly NodeConfig[]): number => {
    const ids = new Set(nodes.map((n) => n.id));
    for (const a of assignments) {
      for (const id of [a.primary, ...a.replicas]) {
        if (!ids.has(id)) {
          throw new ConfigError('nodes', id, `is used by the assignment of space ${a.spaceId}`);
        }
      }
    }
    const next = buildFor(nodes, assignments);
    // The file wins for the node list: nodes added through the admin API and not in the file
    // are removed (said loudly), nodes removed through it but still in the file come back.
    const dropped = [...members.keys()].filter((id) => !ids.has(id));
    const restored = nodes.filter((n) => !members.has(n.id)).map((n) => n.id);
    if (dropped.length > 0 || restored.length > 0) {
      log.warn(
        { event: 'reload-membership', removed: dropped, added: restored },
        'SIGHUP: the config file replaces the node list (admin-added nodes not in it are removed)',
      );
    }
    for (const [id, m] of members) {
      const updated = nodes.find((n) => n.id === id);
      if (updated === undefined) {
        members.delete(id);
        m.probe.close();
        freeSlots.push(m.slot);
      } else if (updated.address !== m.node.address || updated.zone !== m.node.zone) {
        m.probe.close();
        members.set(id, { ...newMemberKeepSlot(m, updated) });
      }
    }
    for (const n of nodes) if (!members.has(n.id)) members.set(n.id, newMember(n));
    ring = next;
    return publish('reload');
  };
  const newMemberKeepSlot = (m: Member, node: NodeConfig): Member => {
    breakers.reset(m.slot);
    return {
      node,
      slot: m.slot,
      state: 'up',
      streak: 0,
      probe: new HealthClient(node.address, probeCredentials, probeOptions),
      probing: false,
    };
  };

  // ---- admin and metrics ---------------------------------------------------------------------
  const snapshot = (): ControlSnapshot => ({
    epoch: writer.epoch,
    partitioned,
    nodes: view().nodes,
    workers: cfg.workers === 0 ? 0 : workers.filter((w) => w !== null).length,
    workerRestarts,
  });
  const metricsText = () => renderMetrics(stateBuffer, snapshot());
  let metricsServer: http.Server | null = null;
  let metricsPort: number | null = null;
  if (cfg.metrics.enabled) {
    metricsServer = http.createServer((req, res) => {
      if (req.url === '/metrics' && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
        res.end(metricsText());
      } else {
        res.writeHead(404).end('not found\n');
      }
    });
    metricsPort = await new Promise<number>((resolve, reject) => {
      metricsServer!.once('error', reject);
      metricsServer!.listen(cfg.metrics.port, cfg.metrics.host, () => {
        const a = metricsServer!.address();
        resolve(typeof a === 'object' && a !== null ? a.port : 0);
      });
    });
  }

  const handle: RouterNode = {
    port,
    address: `${cfg.listen.host.includes(':') ? `[${cfg.listen.host}]` : cfg.listen.host}:${port}`,
    adminPort: null,
    metricsPort,
    workers: cfg.workers,
    config: cfg,
    localCluster,
    table: view,
    metricsText,
    addNode,
    removeNode,
    drainNode,
    assignSpace,
    reloadMembership,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(healthTimer);
      closing = true;
      process.off('SIGUSR2', onTestCrash);
      Atomics.store(control, C_DRAINING, 1);
      log.info({ event: 'shutdown', graceMs: cfg.shutdownGraceMs }, 'draining');
      let left = 0;
      if (mainPlane !== null) left += await mainPlane.drain(cfg.shutdownGraceMs);
      const live = workers.filter((w): w is Worker => w !== null);
      left += (
        await Promise.all(
          live.map(
            (w) =>
              new Promise<number>((resolve) => {
                const onMsg = (msg: WorkerMessage) => {
                  if (msg.type === 'drained') resolve(msg.left);
                };
                w.on('message', onMsg);
                w.once('exit', () => resolve(0));
                w.postMessage({ type: 'drain', graceMs: cfg.shutdownGraceMs });
              }),
          ),
        )
      ).reduce((a, b) => a + Math.max(0, b), 0);
      await Promise.all(live.map((w) => w.terminate()));
      dup?.close();
      await admin?.close();
      // Idle keep-alive scrapers would hold close() open: drop them first.
      metricsServer?.closeAllConnections();
      await new Promise<void>((resolve) =>
        metricsServer ? metricsServer.close(() => resolve()) : resolve(),
      );
      for (const m of members.values()) m.probe.close();
      await localCluster?.stop();
      log.info({ event: 'stopped', abandoned: left }, `stopped (${left} calls abandoned)`);
    },
  };
  let admin: { port: number; close(): Promise<void> } | null = null;
  if (cfg.admin.enabled) {
    try {
      admin = await startAdminServer(handle, cfg, log);
    } catch (err) {
      await handle.close();
      throw err;
    }
    (handle as { adminPort: number | null }).adminPort = admin.port;
  }
  return handle;
}
