import { Buffer } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import { isMainThread } from 'node:worker_threads';
import { type BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { perTurn, turnClock } from '@engram/common';
import { H2Server, type H2Stream } from '@engram/h2';
import { ConnectionPool, type PoolCredentials } from '@engram/pool';
import { SharedRetryBudget } from '@engram/retry';
import { MAX_SPACE_ID_LENGTH, TableReader } from '@engram/ring';
import {
  type AttemptSettle,
  type CallContext,
  type ExecuteOptions,
  LagTable,
  NodeState,
  type NodeStates,
  Router,
  type RoutingDecision,
  type RoutingInfo,
  RoutingStrategy,
  toGrpcStatus,
  VersionClock,
} from '@engram/router';
import type { Logger } from 'pino';
import { attemptObserver } from './attempt-observer.js';
import { ACCEPT_ENCODING, inflateRequest, isAcceptedEncoding } from './compression.js';
import type { RouterNodeConfig } from './config.js';
import { GRPC_STATUS, RouteError } from './errors.js';
import { scatterGather } from './fan-out.js';
import { type AttemptObserver, forward, forwardTo, type Reply, UpstreamError } from './forward.js';
import { HEALTH_CHECK_PATH, HEALTH_WATCH_PATH, HealthService } from './health-service.js';
import { CALL_KIND, type Dispatcher, IngressCall, refuseNonGrpc } from './ingress.js';
import {
  C_DRAINING,
  C_HEALTH_DRAINING,
  C_PARTITIONED,
  controlWords,
  N_EJECTED,
  N_LAST_ANSWER,
  N_STATE,
  NODE_STATE_NAMES,
  nodeWord,
  OP,
  OPERATIONS,
  OUTCOME_INDEX,
  OUTCOME_OK,
  OUTCOME_UPSTREAM_ERROR,
  passiveNow,
  slotCount,
  THREAD_HEAP_INTERVAL_MS,
  WRITE_DEGRADED,
  WRITE_FULL,
  WRITE_INSUFFICIENT,
} from './layout.js';
import { MetricsRecorder } from './metrics.js';
import { type HintSink, quorumRecall, replicatedStore } from './replicated.js';
import { Replies } from './reply.js';
import { SlotBreakers } from './slot-breakers.js';
import { nodeWarmth } from './slow-start.js';
import { upstreamHeaders } from './upstream-headers.js';
import {
  FRAME_HEADER_BYTES,
  headerValue,
  type MessageSchema,
  parseGrpcTimeout,
  REQUEST,
  readSpaceId,
  stampConsolidate,
  stampStore,
} from './wire.js';

/**
 * What a data plane asks of the control plane (the main thread; a worker reaches it by
 * message): keeping a hint durably, and repairing a space whose replicas disagree.
 */
export interface ControlChannel extends HintSink {
  /**
   * Compares the space's replicas and copies what one lacks; resolves when done, with true
   * when every replica took part (false: some could not be reached, and are marked for a
   * repair of their own once up). Rejects when the repair could not run.
   */
  repairSpace(spaceId: string): Promise<boolean>;
}

/** What a data plane's Router is built over, kept to rebuild it on a reload. */
interface RouterParts {
  readonly breakers: BreakerTable;
  readonly nodeStates: NodeStates;
  readonly lag: LagTable;
  budgetBuffer: SharedArrayBuffer;
}

/** Everything a data-plane thread needs; structured-cloneable (posted to workers). */
export interface DataPlaneInit {
  readonly thread: number;
  readonly table: SharedArrayBuffer;
  readonly breakers: SharedArrayBuffer;
  readonly budget: SharedArrayBuffer;
  readonly state: SharedArrayBuffer;
  /** The shared LagTable: which replicas lack acknowledged writes. */
  readonly lag: SharedArrayBuffer;
  readonly config: RouterNodeConfig;
  /** PEM contents (read by the control plane) for ingress TLS and upstream TLS. */
  readonly ingressTls: { cert: Buffer; key: Buffer; ca?: Buffer } | null;
  readonly upstreamCredentials: PoolCredentials;
}

const MEMORY_PREFIX = '/engram.v1.MemoryService/';
const EMPTY = Buffer.alloc(0);
/**
 * The operation of a MemoryService path, by the whole path: no slice of it per call (a keyed
 * lookup by a fresh string hashes it; the decoder hands over the same string for the same path).
 */
const OPERATION_OF_PATH: ReadonlyMap<string, number> = new Map([
  [`${MEMORY_PREFIX}Store`, OP.store],
  [`${MEMORY_PREFIX}Recall`, OP.recall],
  [`${MEMORY_PREFIX}Consolidate`, OP.consolidate],
  [`${MEMORY_PREFIX}Query`, OP.query],
]);
/** The request schema the reader validates a method's message against (by operation). */
const SCHEMA_OF_OPERATION: readonly MessageSchema[] = (() => {
  const out: MessageSchema[] = [];
  for (const op of Object.values(OP)) out[op] = REQUEST.unknown;
  out[OP.store] = REQUEST.store;
  out[OP.recall] = REQUEST.recall;
  out[OP.consolidate] = REQUEST.consolidate;
  out[OP.query] = REQUEST.query;
  return out;
})();
/** A MemoryService call read and routed (`DataPlane.#prepare`). */
interface PreparedCall {
  readonly op: number;
  /** The Router it was decided by (a reload may replace it while the call runs). */
  readonly router: Router;
  /** The request's method path (a replicated write's hints keep it). */
  readonly path: string;
  readonly fwd: string[];
  readonly spaceId: string;
  /** The bytes every attempt sends (a Store's and a Consolidate's stamped). */
  readonly request: Buffer;
  readonly decision: RoutingDecision;
  readonly options: CallOptions;
}

/** The execute options of a MemoryService call (`DataPlane.#optionsOf`). */
type CallOptions = Readonly<ExecuteOptions & { deadlineMs: number }>;

/**
 * Routed to one node at a time (fail-over and retries, no fan-out) and answered as the node
 * answers: what `executeTo` serves. Consolidate is repaired after, so it is not.
 */
function isSingleNode(routed: PreparedCall): boolean {
  const { op, router, decision } = routed;
  if (op === OP.consolidate || decision.strategy === RoutingStrategy.Replicated) return false;
  return op !== OP.recall || !router.readsQuorum(decision);
}

/** `Atomics.waitAsync` (Node 16+; typed only from the es2024 lib, newer than this repo's). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      index: number,
      value: number,
    ): { async: true; value: Promise<string> } | { async: false; value: string };
  }
).waitAsync;
/**
 * The wall clock read once per turn (`perTurn`): the passive-evidence words' stamps (tenths of
 * a second), one per answered attempt. Read through `Date.now` per turn so a mocked one holds.
 */
const wallTurn = perTurn({ now: () => Date.now() });

/** setTimeout's ceiling. */
const MAX_TIMER_MS = 2_147_483_647;

/** Buffers posted to a worker arrive as plain Uint8Arrays; grpc-js and TLS want Buffers. */
function toBuffer(v: string | Uint8Array): string | Buffer {
  return typeof v === 'string' || Buffer.isBuffer(v)
    ? v
    : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function asBuffers(c: PoolCredentials): PoolCredentials {
  if (c.kind !== 'tls') return c;
  const out: { -readonly [K in keyof typeof c]: (typeof c)[K] } = { kind: 'tls' };
  if (c.ca !== undefined) out.ca = toBuffer(c.ca);
  if (c.cert !== undefined) out.cert = toBuffer(c.cert);
  if (c.key !== undefined) out.key = toBuffer(c.key);
  if (c.serverName !== undefined) out.serverName = c.serverName;
  return out;
}

/** The metric outcome label of a failed call. */
function outcomeOf(err: unknown, clientGone: boolean): string {
  if (err instanceof RouteError) return err.code;
  if (clientGone) return 'Cancelled';
  if (err instanceof UpstreamError) return 'upstream_error';
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') return 'Unavailable';
  return code === 'Aborted' ? 'Cancelled' : code;
}

/**
 * One data plane: an HTTP/2 ingress serving MemoryService by forwarding frames, over the
 * shared table, breakers, budget and node states. Every routing decision is the Router's;
 * this class wires the ingress to it. Runs in a worker thread, or on the main thread with
 * `--workers 0`.
 */
export class DataPlane implements Dispatcher {
  /** The listening `net.Server` (a `tls.Server` with ingress TLS). */
  readonly server: NetServer;
  readonly #ingress: H2Server;
  /** The config in force (`reconfigure` replaces it). */
  #cfg: RouterNodeConfig;
  readonly #reader: TableReader;
  readonly #control: Int32Array;
  readonly #metrics: MetricsRecorder;
  readonly #pool: ConnectionPool;
  #router: Router;
  /** What the Router is rebuilt from when a reload changes its settings. */
  readonly #routerParts: RouterParts;
  readonly #replies = new Replies();
  readonly #health: HealthService;
  readonly #channel: ControlChannel;
  readonly #log: Logger;
  readonly #versions = new VersionClock();
  #inFlight = 0;
  /** Execute options per operation for calls with the configured deadline (`#optionsOf`). */
  readonly #sharedOptions: (CallOptions | undefined)[] = [];
  /** `:scheme` of upstream requests. */
  readonly #scheme: 'http' | 'https';
  readonly #stopGc: () => void;
  /** Largest request frame buffered (message + gRPC frame header). */
  #maxRequestBytes: number;
  /** A quorum read found replicas that differ: counted, and the space repaired behind it. */
  readonly #readRepair = (spaceId: string): void => {
    this.#metrics.readRepair();
    void this.#channel.repairSpace(spaceId).catch(() => {});
  };
  /** Records a node's answer in its passive word (see layout.ts). */
  readonly #answered: (nodeId: string) => void;
  /** Counts every attempt sent to a node, by status, into this thread's region. */
  readonly #attempted: AttemptObserver;
  /** The same, for attempts with no attempt timeout (Consolidate): not counted in flight. */
  readonly #attemptedUnbounded: AttemptObserver;
  /** Samples this thread's gauges: a worker's heap, and the writes trailing per node. */
  readonly #gaugeTimer: ReturnType<typeof setInterval>;

  constructor(init: DataPlaneInit, log: Logger, channel: ControlChannel) {
    const cfg = init.config;
    this.#channel = channel;
    this.#log = log;
    this.#cfg = cfg;
    this.#scheme = init.upstreamCredentials.kind === 'tls' ? 'https' : 'http';
    this.#reader = new TableReader(init.table);
    const control = controlWords(init.state);
    this.#control = control;
    const slots = slotCount(control);
    this.#metrics = new MetricsRecorder(init.state, init.thread);
    this.#stopGc = this.#metrics.observeGc();
    const reader = this.#reader;
    const sessionsByNode = new Map<string, number>();
    this.#pool = new ConnectionPool({
      channelsPerNode: cfg.pool.channelsPerNode,
      connectTimeoutMs: cfg.pool.connectTimeoutMs,
      keepaliveIntervalMs: cfg.pool.keepaliveIntervalMs,
      keepaliveTimeoutMs: cfg.pool.keepaliveTimeoutMs,
      credentials: asBuffers(init.upstreamCredentials),
      onConnection: (e) => {
        if (e.kind !== 'h2') return;
        const n = (sessionsByNode.get(e.nodeId) ?? 0) + (e.type === 'open' ? 1 : -1);
        sessionsByNode.set(e.nodeId, n);
        const index = reader.nodeIndex(e.nodeId);
        if (index >= 0) this.#metrics.poolSessions(reader.nodeSlot(index), n);
      },
    });
    const nodeStates: NodeStates = {
      stateOf: (_node, slot) =>
        slot < 0 || slot >= slots
          ? NodeState.Up
          : (NODE_STATE_NAMES[Atomics.load(control, nodeWord(slot, N_STATE))] ?? NodeState.Up),
      // An ejected outlier (outlier-monitor.ts) is tried after every other up node and before
      // down ones; it stays reachable, so an ejection never makes a space unavailable.
      isEjected: (_node, slot) =>
        slot >= 0 && slot < slots && Atomics.load(control, nodeWord(slot, N_EJECTED)) !== 0,
      // Slow start: the window in force is read per call, so a reload applies at once.
      warmth: (_node, slot) => nodeWarmth(control, slot, this.#cfg.health.slowStartMs),
    };
    const rc = cfg.router;
    this.#routerParts = {
      // A verdict counts only on the node it was admitted for (slots are reused).
      breakers: new SlotBreakers(
        {
          buffer: init.breakers,
          trip: new ConsecutiveFailures(rc.breakerThreshold),
          openTimeoutMs: rc.breakerTimeoutMs,
          // Transitions are logged by the Router (one line each, in the thread that won it).
        },
        control,
      ),
      nodeStates,
      lag: new LagTable({ buffer: init.lag }),
      budgetBuffer: init.budget,
    };
    this.#router = this.#newRouter(cfg, init.budget);
    this.#health = new HealthService(
      this.#replies,
      () => reader.published,
      () => this.#draining,
    );
    // The control plane notifies the word when the drain window starts: open Watch streams
    // learn NOT_SERVING then. (A pending waitAsync does not keep a thread alive.)
    const window = waitAsync(control, C_HEALTH_DRAINING, 0);
    if (window.async) void window.value.then(() => this.#health.update());
    this.#maxRequestBytes = rc.maxMessageBytes + FRAME_HEADER_BYTES;
    this.#answered = (nodeId) => {
      const index = reader.nodeIndex(nodeId);
      const slot = index < 0 ? -1 : reader.nodeSlot(index);
      if (slot < 0 || slot >= slots) return;
      const now = passiveNow(control, wallTurn.now());
      if (Atomics.load(control, nodeWord(slot, N_LAST_ANSWER)) !== now) {
        Atomics.store(control, nodeWord(slot, N_LAST_ANSWER), now);
      }
    };
    // One table lookup per attempt, as #answered does (attempt-observer.ts).
    const slotOf = (nodeId: string): number => {
      const index = reader.nodeIndex(nodeId);
      return index < 0 ? -1 : reader.nodeSlot(index);
    };
    const observer = (inFlight: boolean) =>
      attemptObserver(this.#metrics, control, slotOf, inFlight);
    this.#attempted = observer(true);
    // A Consolidate may rightly run long: its attempts are not counted in flight, so one never
    // looks like a stalled node to the outlier detector.
    this.#attemptedUnbounded = observer(false);
    // Gauges sampled every THREAD_HEAP_INTERVAL_MS: a worker's V8 heap (the main thread's is
    // the process's own metric) and the replica writes trailing their answers, per node.
    const sample = () => {
      if (!isMainThread) this.#metrics.sampleHeap();
      this.#sampleTrailing();
    };
    sample();
    this.#gaugeTimer = setInterval(sample, THREAD_HEAP_INTERVAL_MS);
    this.#gaugeTimer.unref();
    const t = init.ingressTls;
    this.#ingress = new H2Server({
      settings: {
        maxConcurrentStreams: cfg.listen.maxConcurrentStreams,
        maxHeaderListSize: cfg.listen.maxHeaderListBytes,
      },
      idleTimeoutMs: cfg.listen.idleTimeoutMs,
      headerTimeoutMs: cfg.listen.headerTimeoutMs,
      bodyTimeoutMs: cfg.listen.bodyTimeoutMs,
      bodyMinBytesPerSecond: cfg.listen.bodyMinBytesPerSecond,
      sendTimeoutMs: cfg.listen.sendTimeoutMs,
      maxConnections: cfg.listen.maxConnectionsPerWorker,
      onLimit: (kind) => this.#metrics.ingressLimit(kind),
      tls:
        t === null
          ? null
          : {
              cert: toBuffer(t.cert),
              key: toBuffer(t.key),
              ...(t.ca !== undefined
                ? { ca: toBuffer(t.ca), requestCert: true, rejectUnauthorized: true }
                : {}),
            },
      onStream: (stream) => {
        if (refuseNonGrpc(stream)) return;
        const call = new IngressCall(this, stream, this.#maxRequestBytes);
        stream.handler = call;
        if (stream.remoteEnded) call.requestComplete();
      },
    });
    this.server = this.#ingress.server;
    // Connect to the nodes before the first call (the router syncs its pool on decisions).
    if (reader.published) void this.#router.pool;
  }

  /**
   * A reload's settings (see ConfigUpdate): the ones read per call (deadline, largest request,
   * log level) apply to the next call; the Router is rebuilt when its options or the retry
   * budget changed (calls in flight finish on the one they started with). The ingress, the
   * pool and the breakers keep the settings they started with (those keys need a restart).
   */
  reconfigure(config: RouterNodeConfig, budget: SharedArrayBuffer): void {
    const before = this.#cfg;
    this.#cfg = config;
    this.#maxRequestBytes = config.router.maxMessageBytes + FRAME_HEADER_BYTES;
    this.#log.level = config.logLevel;
    const parts = this.#routerParts;
    if (
      budget !== parts.budgetBuffer ||
      JSON.stringify(before.router) !== JSON.stringify(config.router) ||
      JSON.stringify(before.retryBudget) !== JSON.stringify(config.retryBudget)
    ) {
      parts.budgetBuffer = budget;
      const old = this.#router;
      this.#router = this.#newRouter(config, budget);
      void old.close();
    }
    this.#log.debug({ event: 'config-update' }, 'data plane reconfigured');
  }

  #newRouter(cfg: RouterNodeConfig, budget: SharedArrayBuffer): Router {
    const rc = cfg.router;
    const control = this.#control;
    const parts = this.#routerParts;
    const log = this.#log;
    return new Router({
      table: this.#reader,
      breakers: parts.breakers,
      // The clock read once per turn (Envoy's approximate time): a call reads it from the
      // request's arrival to its reply some ten times (deadline, budget, attempt start and end,
      // latencies); one reading serves every call of a batch read in one go.
      budget: new SharedRetryBudget({ buffer: budget, ...cfg.retryBudget, clock: turnClock }),
      clock: turnClock,
      pool: this.#pool,
      managePool: true,
      partition: { isPartitioned: () => Atomics.load(control, C_PARTITIONED) === 1 },
      nodeStates: parts.nodeStates,
      lag: parts.lag,
      ...(cfg.localNodeId !== null ? { localNodeId: cfg.localNodeId } : {}),
      options: {
        maxRetries: rc.maxRetries,
        retryBaseDelayMs: rc.retryBaseDelayMs,
        retryMaxDelayMs: rc.retryMaxDelayMs,
        deadlineMs: rc.deadlineMs,
        attemptTimeoutMs: rc.attemptTimeoutMs,
        replicaFallback: rc.replicaFallback,
        storeFallback: rc.storeFallback,
        replicateWrites: rc.replicateWrites,
        writeConsistency: rc.writeConsistency,
        readConsistency: rc.readConsistency,
        readBalancing: rc.readBalancing,
        readBalancingThreshold: rc.readBalancingThreshold,
        breakerThreshold: rc.breakerThreshold,
        breakerTimeoutMs: rc.breakerTimeoutMs,
        breakerCapacity: slotCount(control),
        maxSpaceIdLength: MAX_SPACE_ID_LENGTH,
      },
      hooks: {
        onDecision: (_op, _strategy, ns) => this.#metrics.decision(ns / 1e9),
        onRetry: (operation) => this.#metrics.retry(OP[operation as keyof typeof OP] ?? OP.other),
      },
      logger: log,
    });
  }

  /** The trailing-writes gauge of each node in the table, from the router in use. */
  #sampleTrailing(): void {
    const reader = this.#reader;
    const trailing = this.#router.trailing;
    const nodes: [number, string][] = [];
    if (reader.published) {
      for (const [i, node] of reader.nodes.entries()) nodes.push([reader.nodeSlot(i), node.id]);
    }
    this.#metrics.sampleTrailing(nodes, (id) => trailing.of(id));
  }

  /** A shutdown started (the drain window, or GOAWAY after it): health is NOT_SERVING. */
  get #draining(): boolean {
    return (
      Atomics.load(this.#control, C_HEALTH_DRAINING) === 1 ||
      Atomics.load(this.#control, C_DRAINING) === 1
    );
  }

  /** Listens on host:port (owner) or on a listening fd shared by another thread. */
  listen(target: { host: string; port: number } | { fd: number }): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const done = () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        resolve(typeof addr === 'object' && addr !== null ? addr.port : 0);
      };
      if ('fd' in target) this.server.listen({ fd: target.fd }, done);
      else this.server.listen(target.port, target.host, done);
    });
  }

  /** The listening socket's fd, for other threads to accept on (Linux: threads share fds). */
  listeningFd(): number {
    const handle = (this.server as unknown as NetServer & { _handle?: { fd?: number } })._handle;
    return handle?.fd ?? -1;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Stops accepting, lets in-flight calls finish (up to `graceMs`), then closes the
   * sessions and the pool. Resolves with the number of calls still in flight at the end.
   */
  async drain(graceMs: number): Promise<number> {
    this.#health.drain();
    // GOAWAY: clients open no new streams; a connection closes once its streams have ended
    // (replies and trailers written), which is what "no call lost" needs.
    await this.#ingress.shutdown(graceMs);
    const left = this.#inFlight;
    this.#ingress.destroy();
    await this.#pool.close();
    this.#stopGc();
    clearInterval(this.#gaugeTimer);
    return left;
  }

  watchEnded(stream: H2Stream): void {
    this.#health.ended(stream);
  }

  /** A complete request from the ingress: routes it by method. */
  dispatch(call: IngressCall, tooLarge: boolean, body: Buffer): void {
    const stream = call.stream;
    const headers = stream.headers!;
    if (tooLarge) {
      this.#replies.fail(
        stream,
        GRPC_STATUS.RESOURCE_EXHAUSTED,
        `request larger than ${this.#maxRequestBytes} bytes`,
      );
      return;
    }
    const path = headerValue(headers, ':path') ?? '';
    if (!isAcceptedEncoding(headerValue(headers, 'grpc-encoding'))) {
      // As the gRPC spec asks: UNIMPLEMENTED, and what the router does accept.
      this.#replies.fail(
        stream,
        GRPC_STATUS.UNIMPLEMENTED,
        `grpc-encoding ${headerValue(headers, 'grpc-encoding')} is not supported`,
        ['grpc-accept-encoding', ACCEPT_ENCODING],
      );
      return;
    }
    if (path.startsWith(MEMORY_PREFIX)) {
      this.#memory(call, headers, path, body);
    } else if (path === HEALTH_CHECK_PATH) {
      this.#health.check(stream, body);
    } else if (path === HEALTH_WATCH_PATH) {
      call.kind = CALL_KIND.watch;
      this.#health.watch(stream, body);
    } else {
      this.#replies.fail(stream, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${path}`);
    }
  }

  /**
   * A MemoryService call. The common case (an uncompressed Recall, Store or other call routed
   * to one node at a time: fail-over, retries) runs without a promise (`executeTo`, replies
   * through the IngressCall as its sink); replicated writes, quorum reads, Consolidate, Query
   * and compressed requests take `#memoryAsync`.
   */
  #memory(call: IngressCall, headers: readonly string[], path: string, body: Buffer): void {
    const op = OPERATION_OF_PATH.get(path) ?? OP.other;
    call.op = op;
    call.started = turnClock.now();
    this.#inFlight++;
    this.#metrics.inFlight(1);
    if (op === OP.query || (body.length > 0 && body[0] !== 0)) {
      void this.#memoryAsync(call, headers, path, body);
      return;
    }
    let routed: PreparedCall;
    try {
      routed = this.#prepare(call, headers, path, body, body);
    } catch (err) {
      this.failed(call, err);
      return;
    }
    if (!isSingleNode(routed)) {
      void this.#routeAsync(call, routed);
      return;
    }
    // The call runs its attempts (`attempt` below) and takes the outcome: no closure per call.
    call.fwd = routed.fwd;
    call.request = routed.request;
    routed.router.executeTo(routed.decision, call, routed.options, call);
  }

  /** One attempt of a call `#memory` routed to one node at a time. */
  attempt(call: IngressCall, ctx: CallContext, settle: AttemptSettle<Reply>): void {
    forwardTo(
      this.#pool,
      ctx,
      call.fwd!,
      call.request,
      call,
      settle,
      this.#answered,
      this.#attempted,
    );
  }

  /** A compressed request (inflated first) or a Query: the rest as `#routeAsync`. */
  async #memoryAsync(
    call: IngressCall,
    headers: readonly string[],
    path: string,
    body: Buffer,
  ): Promise<void> {
    const op = call.op;
    try {
      // A compressed message is read inflated (at most the request limit: a bomb is
      // RESOURCE_EXHAUSTED here). Recall and unknown methods forward the client's bytes as
      // they came; Store and Consolidate forward their stamped message uncompressed (flag 0 is
      // valid whatever grpc-encoding says), and Query sub-queries are built uncompressed.
      const plain =
        body.length > 0 && body[0] !== 0
          ? await inflateRequest(
              body,
              headerValue(headers, 'grpc-encoding'),
              this.#maxRequestBytes - FRAME_HEADER_BYTES,
            )
          : body;
      if (op === OP.query) {
        const fwd = upstreamHeaders(headers, path, this.#scheme);
        const routing = await scatterGather(
          this.#router,
          this.#pool,
          this.#replies,
          call.stream,
          fwd,
          plain,
          { deadlineMs: this.#deadlineOf(headers), operation: OPERATIONS[op] },
          call,
          this.#readRepair,
          this.#attempted,
        );
        if (routing.fallback) this.#metrics.fallback(op);
        this.#end(call, OUTCOME_OK);
        return;
      }
      await this.#routeAsync(call, this.#prepare(call, headers, path, body, plain));
    } catch (err) {
      this.failed(call, err);
    }
  }

  /**
   * A call's execute options. Those of a call with the configured deadline (a client that sent
   * no `grpc-timeout`) are made once per operation and shared (the Router only reads them).
   */
  #optionsOf(op: number, deadlineMs: number): CallOptions {
    const cached = this.#sharedOptions[op];
    if (cached !== undefined && cached.deadlineMs === deadlineMs) return cached;
    const options: CallOptions = Object.freeze(
      op === OP.consolidate
        ? // Consolidation may take long on a big space: bounded by the deadline only.
          { deadlineMs, operation: OPERATIONS[op], attemptTimeoutMs: Number.POSITIVE_INFINITY }
        : { deadlineMs, operation: OPERATIONS[op] },
    );
    if (deadlineMs === this.#cfg.router.deadlineMs) this.#sharedOptions[op] = options;
    return options;
  }

  /** The call's deadline: the client's `grpc-timeout`, else `router.deadlineMs`. */
  #deadlineOf(headers: readonly string[]): number {
    const timeoutMs = parseGrpcTimeout(headerValue(headers, 'grpc-timeout'));
    return Math.min(timeoutMs ?? this.#cfg.router.deadlineMs, MAX_TIMER_MS);
  }

  /**
   * Reads and routes a Store, Recall, Consolidate or other call (`plain`: its message
   * uncompressed). Throws a RouteError for a request no node must see.
   */
  #prepare(
    call: IngressCall,
    headers: readonly string[],
    path: string,
    body: Buffer,
    plain: Buffer,
  ): PreparedCall {
    const op = call.op;
    const deadlineMs = this.#deadlineOf(headers);
    const fwd = upstreamHeaders(headers, path, this.#scheme);
    const router = this.#router;
    const options = this.#optionsOf(op, deadlineMs);
    // The whole message is validated as the node will decode it (proto-reader.ts): a request
    // the node would refuse or read differently is refused here (INVALID_ARGUMENT), before
    // any node is tried, so it never counts on a breaker.
    const spaceId = readSpaceId(plain, SCHEMA_OF_OPERATION[op]!);
    // A Store gets its memory id (when it has none) and its last-write-wins version here,
    // once: every attempt, replica and hint carries the same ones, so nodes that get it twice
    // or late converge. A Consolidate gets the version its merges are written with.
    const request =
      op === OP.store
        ? stampStore(plain, randomUUID, this.#versions.next())
        : op === OP.consolidate
          ? stampConsolidate(plain, this.#versions.next())
          : body;
    const decision =
      op === OP.store
        ? router.routeStore(spaceId)
        : op === OP.consolidate
          ? router.routeConsolidation(spaceId)
          : router.routeRecall(spaceId);
    return { op, router, path, fwd, spaceId, request, decision, options };
  }

  /** A replicated write, a quorum read, a Consolidate (repaired after), or a compressed call. */
  async #routeAsync(call: IngressCall, routed: PreparedCall): Promise<void> {
    const { op, router, path, fwd, spaceId, request, decision, options } = routed;
    const pool = this.#pool;
    const replicated = decision.strategy === RoutingStrategy.Replicated;
    let value: Reply;
    let routing: RoutingInfo;
    try {
      const answer = replicated
        ? await replicatedStore(
            router,
            pool,
            this.#channel,
            decision,
            fwd,
            path,
            request,
            options,
            this.#answered,
            this.#attempted,
          )
        : op === OP.recall && router.readsQuorum(decision)
          ? await quorumRecall(
              router,
              pool,
              decision,
              fwd,
              request,
              call,
              options,
              this.#answered,
              this.#readRepair,
              this.#attempted,
            )
          : await router.execute(
              decision,
              (ctx) =>
                forward(
                  pool,
                  ctx,
                  fwd,
                  request,
                  call,
                  this.#answered,
                  op === OP.consolidate ? this.#attemptedUnbounded : this.#attempted,
                ),
              options,
            );
      value = answer.value;
      routing = answer.routing;
      if (op === OP.consolidate && value.status === 0 && router.options.replicateWrites) {
        // One node consolidated; its replicas take its merges by a repair before the answer.
        // A repair that could not reach every replica (or not run) leaves the answer as it is,
        // since the node did consolidate, flagged degraded: the replicas short of the merges
        // are marked for a repair of their own.
        const complete = await this.#channel.repairSpace(spaceId).catch((err: unknown) => {
          this.#log.warn({ err, spaceId }, 'repair after consolidation failed');
          return false;
        });
        if (!complete) routing = { ...routing, degraded: true };
      }
    } catch (err) {
      this.failed(call, err);
      return;
    }
    if (replicated) {
      this.#metrics.replicatedWrite(routing.degraded === true ? WRITE_DEGRADED : WRITE_FULL);
    }
    // Outside the try: the call is counted out once, by `routed` (or above, by `failed`).
    this.routed(call, value, routing);
  }

  /** The node's reply, RoutingInfo added (the IngressCall's sink, and `#routeAsync`'s end). */
  routed(call: IngressCall, value: Reply, routing: RoutingInfo): void {
    try {
      if (routing.fallback) this.#metrics.fallback(call.op);
      this.#replies.respond(call.stream, value, routing);
    } finally {
      this.#end(call, value.status !== 0 ? OUTCOME_UPSTREAM_ERROR : OUTCOME_OK);
    }
  }

  /** A call that ended in an error: a trailers-only reply saying why. */
  failed(call: IngressCall, err: unknown): void {
    const outcome = outcomeOf(err, call.gone);
    try {
      if (outcome === 'InsufficientReplicas' && call.op === OP.store) {
        this.#metrics.replicatedWrite(WRITE_INSUFFICIENT);
      }
      const { code, message } =
        err instanceof RouteError
          ? { code: err.grpcStatus, message: err.message }
          : toGrpcStatus(err);
      this.#replies.fail(call.stream, code, message, [
        'x-engram-error',
        outcome,
        'x-engram-epoch',
        this.#replies.epochString(this.#reader.epoch),
      ]);
    } finally {
      this.#end(call, OUTCOME_INDEX.get(outcome) ?? OUTCOME_INDEX.get('Unavailable')!);
    }
  }

  /** Counts a call out: in flight, and its outcome (an index of OUTCOMES) and duration. */
  #end(call: IngressCall, outcome: number): void {
    call.fwd = null;
    call.request = EMPTY;
    this.#inFlight--;
    this.#metrics.inFlight(-1);
    this.#metrics.request(call.op, outcome, (turnClock.now() - call.started) / 1000);
  }
}
