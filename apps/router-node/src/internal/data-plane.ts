import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { Server as NetServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import { ConnectionPool, type PoolCredentials } from '@engram/pool';
import { MemoryServiceDefinition, type QueryRequest, type QueryResponse } from '@engram/proto';
import { Deadline, SharedRetryBudget } from '@engram/retry';
import { MAX_SPACE_ID_LENGTH, type NodeInfo, TableReader } from '@engram/ring';
import {
  type CallContext,
  type ExecuteOptions,
  Router,
  type RoutingDecision,
  type RoutingInfo,
  toGrpcStatus,
  whenCancelled,
} from '@engram/router';
import type { Logger } from 'pino';
import type { RouterNodeConfig } from './config.js';
import { GRPC_STATUS, RouteError } from './errors.js';
import {
  C_DRAINING,
  C_NODE_STATE,
  C_PARTITIONED,
  controlWords,
  MAX_NODE_SLOTS,
  NODE_STATE,
  OP,
  OPERATIONS,
  OUTCOME_INDEX,
} from './layout.js';
import { MetricsRecorder } from './metrics.js';
import {
  appendRouting,
  assignMemoryId,
  encodeGrpcMessage,
  FRAME_HEADER_BYTES,
  formatGrpcTimeout,
  frameMessage,
  parseGrpcTimeout,
  readSpaceId,
} from './wire.js';

/** Everything a data-plane thread needs; structured-cloneable (posted to workers). */
export interface DataPlaneInit {
  readonly thread: number;
  readonly table: SharedArrayBuffer;
  readonly breakers: SharedArrayBuffer;
  readonly budget: SharedArrayBuffer;
  readonly state: SharedArrayBuffer;
  readonly config: RouterNodeConfig;
  /** PEM contents (read by the control plane) for ingress TLS and upstream TLS. */
  readonly ingressTls: { cert: Buffer; key: Buffer; ca?: Buffer } | null;
  readonly upstreamCredentials: PoolCredentials;
}

export const STRATEGY = Object.freeze({
  Primary: 'Primary',
  PrimaryWithFallback: 'PrimaryWithFallback',
  LocalOnly: 'LocalOnly',
  ScatterGather: 'ScatterGather',
} as const);
type Strategy = (typeof STRATEGY)[keyof typeof STRATEGY];
const STRATEGY_BYTES: Readonly<Record<Strategy, Buffer>> = {
  Primary: Buffer.from('Primary'),
  PrimaryWithFallback: Buffer.from('PrimaryWithFallback'),
  LocalOnly: Buffer.from('LocalOnly'),
  ScatterGather: Buffer.from('ScatterGather'),
};

const MEMORY_PREFIX = '/engram.v1.MemoryService/';
const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';
const HEALTH_SERVICE = 'engram.v1.MemoryService';
/** HealthCheckResponse { status = 1 } frames: SERVING = 1, NOT_SERVING = 2, SERVICE_UNKNOWN = 3. */
const HEALTH_SERVING = frameMessage(Uint8Array.of(0x08, 1));
const HEALTH_NOT_SERVING = frameMessage(Uint8Array.of(0x08, 2));
const HEALTH_SERVICE_UNKNOWN = frameMessage(Uint8Array.of(0x08, 3));
const OPERATION_OF_METHOD: Readonly<Record<string, number>> = {
  Store: OP.store,
  Recall: OP.recall,
  Consolidate: OP.consolidate,
  Query: OP.query,
};

/** Headers not forwarded upstream (pseudo-headers are skipped separately). */
const HOP_HEADERS = new Set([
  'grpc-timeout',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
  'proxy-connection',
]);

/** What one attempt got back from a node. */
interface Reply {
  /** The node's gRPC status (0 = OK). */
  status: number;
  /** Response headers, to pass through (grpc-encoding). */
  headers: http2.IncomingHttpHeaders;
  /** Trailers (or the headers of a trailers-only reply). */
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A failed attempt, shaped like a grpc-js error (`code` = gRPC status) so the Router's
 * policy classifies it: UNAVAILABLE is retried and fails over, UNKNOWN/INTERNAL count on the
 * node's breaker and go back to the client.
 */
class UpstreamError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    readonly nodeId: string,
  ) {
    super(details);
  }
}

/** Buffers posted to a worker arrive as plain Uint8Arrays; grpc-js wants Buffers. */
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

/** The client side of one routed call: whether the client went away, and the attempt in flight. */
interface ClientCall {
  gone: boolean;
  upstream: http2.ClientHttp2Stream | null;
  /** Per-space sub-calls of a scatter-gather. */
  children: ClientCall[] | null;
}

function cancelCall(call: ClientCall): void {
  call.gone = true;
  const up = call.upstream;
  if (up !== null && !up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
  if (call.children !== null) for (const c of call.children) cancelCall(c);
}

/** Statuses that say the node itself is unwell: thrown so the Router retries or counts them. */
function isNodeFailureStatus(status: number): boolean {
  return (
    status === GRPC_STATUS.UNAVAILABLE ||
    status === GRPC_STATUS.UNKNOWN ||
    status === GRPC_STATUS.INTERNAL ||
    status === 15 /* DATA_LOSS */
  );
}

const EMPTY = Buffer.alloc(0);
/** Shared per-call constants: node:http2 copies options objects, so one frozen object serves every call. */
const NOOP = (): void => {};
const REQUEST_OPTIONS: Readonly<http2.ClientSessionRequestOptions> = Object.freeze({
  endStream: false,
});
const WAIT_FOR_TRAILERS: Readonly<http2.ServerStreamResponseOptions> = Object.freeze({
  waitForTrailers: true,
});
const END_STREAM: Readonly<http2.ServerStreamResponseOptions> = Object.freeze({
  endStream: true,
});
/** `String(n)` for small attempt counts without a new string per call. */
const SMALL_INTS = Array.from({ length: 16 }, (_, i) => String(i));
function intString(n: number): string {
  return n >= 0 && n < SMALL_INTS.length ? SMALL_INTS[n]! : String(n);
}
/** setTimeout's ceiling. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * One data plane: an HTTP/2 ingress serving MemoryService by forwarding frames, and the
 * routing/retry/fallback logic over the shared table, breakers and budget. Runs in a worker
 * thread, or on the main thread with `--workers 0`.
 */
export class DataPlane {
  readonly server: http2.Http2Server | http2.Http2SecureServer;
  readonly #cfg: RouterNodeConfig;
  readonly #reader: TableReader;
  readonly #breakers: BreakerTable;
  readonly #budget: SharedRetryBudget;
  readonly #control: Int32Array;
  readonly #metrics: MetricsRecorder;
  readonly #pool: ConnectionPool;
  readonly #router: Router;
  /** Epoch the pool membership was last synced to. */
  #epoch = -1;
  /** UTF-8 node ids for the RoutingInfo field (encoded once per node). */
  readonly #servedBy = new Map<string, Buffer>();
  #inFlight = 0;
  #epochStringOf = -1;
  #epochStringValue = '-1';
  /** `:scheme` of upstream requests. */
  readonly #scheme: 'http' | 'https';
  readonly #stopGc: () => void;
  #drainWaiters: (() => void)[] = [];
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  /** Open Health/Watch streams: told NOT_SERVING and ended when draining starts. */
  readonly #watchers = new Map<http2.ServerHttp2Stream, boolean>();

  constructor(init: DataPlaneInit, log: Logger) {
    this.#cfg = init.config;
    this.#scheme = init.upstreamCredentials.kind === 'tls' ? 'https' : 'http';
    this.#reader = new TableReader(init.table);
    this.#control = controlWords(init.state);
    this.#metrics = new MetricsRecorder(init.state, init.thread);
    this.#stopGc = this.#metrics.observeGc();
    this.#breakers = new BreakerTable({
      buffer: init.breakers,
      trip: new ConsecutiveFailures(init.config.router.breakerThreshold),
      openTimeoutMs: init.config.router.breakerTimeoutMs,
      // Transitions are logged by the Router (one line each, in the thread that won it).
    });
    this.#budget = new SharedRetryBudget({ buffer: init.budget, ...init.config.retryBudget });
    const sessionsBySlot = new Map<string, number>();
    this.#pool = new ConnectionPool({
      channelsPerNode: init.config.pool.channelsPerNode,
      connectTimeoutMs: init.config.pool.connectTimeoutMs,
      keepaliveIntervalMs: init.config.pool.keepaliveIntervalMs,
      keepaliveTimeoutMs: init.config.pool.keepaliveTimeoutMs,
      credentials: asBuffers(init.upstreamCredentials),
      onConnection: (e) => {
        if (e.kind !== 'session') return;
        const n = (sessionsBySlot.get(e.nodeId) ?? 0) + (e.type === 'open' ? 1 : -1);
        sessionsBySlot.set(e.nodeId, n);
        const index = this.#reader.nodeIndex(e.nodeId);
        if (index >= 0) this.#metrics.poolSessions(this.#reader.nodeSlot(index), n);
      },
    });
    const control = this.#control;
    const rc = init.config.router;
    this.#router = new Router({
      table: this.#reader,
      breakers: this.#breakers,
      budget: this.#budget,
      partition: { isPartitioned: () => Atomics.load(control, C_PARTITIONED) === 1 },
      ...(init.config.localNodeId !== null ? { localNodeId: init.config.localNodeId } : {}),
      options: {
        maxRetries: rc.maxRetries,
        retryBaseDelayMs: rc.retryBaseDelayMs,
        retryMaxDelayMs: rc.retryMaxDelayMs,
        deadlineMs: rc.deadlineMs,
        attemptTimeoutMs: rc.attemptTimeoutMs,
        replicaFallback: rc.replicaFallback,
        storeFallback: rc.storeFallback,
        breakerThreshold: rc.breakerThreshold,
        breakerTimeoutMs: rc.breakerTimeoutMs,
        breakerCapacity: MAX_NODE_SLOTS,
        maxSpaceIdLength: MAX_SPACE_ID_LENGTH,
      },
      hooks: {
        onDecision: (_op, _strategy, ns) => this.#metrics.decision(ns / 1e9),
        onRetry: (operation) => this.#metrics.retry(OP[operation as keyof typeof OP] ?? OP.other),
      },
      logger: log,
    });
    const settings: http2.Settings = { maxConcurrentStreams: 1000 };
    const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) =>
      this.#onStream(stream, headers);
    if (init.ingressTls !== null) {
      const t = init.ingressTls;
      this.server = http2.createSecureServer({
        cert: toBuffer(t.cert),
        key: toBuffer(t.key),
        ...(t.ca !== undefined
          ? { ca: toBuffer(t.ca), requestCert: true, rejectUnauthorized: true }
          : {}),
        allowHTTP1: false,
        settings,
      });
    } else {
      this.server = http2.createServer({ settings });
    }
    this.server.on('stream', onStream);
    this.server.on('session', (s: http2.ServerHttp2Session) => {
      this.#sessions.add(s);
      s.once('close', () => {
        this.#sessions.delete(s);
        if (this.#sessions.size === 0 && this.#drainWaiters.length > 0) {
          for (const w of this.#drainWaiters.splice(0)) w();
        }
      });
      s.on('error', () => {});
    });
    this.#sync();
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
    this.server.close();
    // Watchers learn NOT_SERVING, then their streams end so the sessions can close.
    for (const [w, known] of this.#watchers) {
      if (w.closed) continue;
      if (known) w.write(HEALTH_NOT_SERVING);
      w.end();
    }
    this.#watchers.clear();
    // GOAWAY: clients open no new streams; a session closes once its streams have ended
    // (replies and trailers written), which is what "no call lost" needs.
    for (const s of this.#sessions) if (!s.closed) s.close();
    if (this.#sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        this.#drainWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    const left = this.#inFlight;
    for (const s of this.#sessions) s.destroy();
    await this.#pool.close();
    this.#stopGc();
    return left;
  }

  /** Follows a new table epoch: the pool's membership (ids and addresses). */
  #sync(): void {
    const r = this.#reader;
    if (!r.published) return;
    r.refresh();
    if (r.epoch === this.#epoch) return;
    const keep = new Set<string>();
    for (const n of r.nodes) {
      keep.add(n.id);
      this.#pool.addNode(n.id, n.address); // idempotent; a new address reconnects
    }
    for (const id of this.#pool.nodeIds()) {
      if (!keep.has(id)) void this.#pool.removeNode(id).catch(() => {});
    }
    this.#epoch = r.epoch;
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = headers[':path'] ?? '';
    stream.on('error', NOOP);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const max = this.#cfg.router.maxMessageBytes + FRAME_HEADER_BYTES;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) tooLarge = true;
      else chunks.push(c);
    });
    // 'end', 'close' and 'wantTrailers' fire at most once per stream: plain on() listeners
    // skip once()'s wrapper allocation on the hot path.
    stream.on('end', () => {
      if (tooLarge) {
        this.#fail(stream, GRPC_STATUS.RESOURCE_EXHAUSTED, `request larger than ${max} bytes`);
        return;
      }
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      if (path.startsWith(MEMORY_PREFIX)) {
        void this.#handleMemory(stream, headers, path, body);
      } else if (path === HEALTH_CHECK_PATH) {
        this.#handleHealth(stream, body);
      } else if (path === HEALTH_WATCH_PATH) {
        this.#handleWatch(stream, body);
      } else {
        this.#fail(stream, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${path}`);
      }
    });
  }

  /** SERVING while the table is usable and the router is not draining. */
  #servingStatus(): Buffer {
    const draining = Atomics.load(this.#control, C_DRAINING) === 1;
    return draining || !this.#reader.published ? HEALTH_NOT_SERVING : HEALTH_SERVING;
  }

  /**
   * Health/Watch: a server stream that sends the serving status now, and NOT_SERVING before
   * it ends when draining starts (SIGTERM). An unknown service gets SERVICE_UNKNOWN and the
   * stream stays open, as the health protocol asks.
   */
  #handleWatch(stream: http2.ServerHttp2Stream, body: Buffer): void {
    const service = readSpaceId(body);
    if (service === null) {
      this.#fail(stream, GRPC_STATUS.INVALID_ARGUMENT, 'malformed HealthCheckRequest');
      return;
    }
    if (stream.closed) return;
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    const known = service === '' || service === HEALTH_SERVICE;
    const status = known ? this.#servingStatus() : HEALTH_SERVICE_UNKNOWN;
    if (status === HEALTH_NOT_SERVING && Atomics.load(this.#control, C_DRAINING) === 1) {
      stream.end(status);
      return;
    }
    stream.write(status);
    this.#watchers.set(stream, known);
    stream.once('close', () => this.#watchers.delete(stream));
  }

  #handleHealth(stream: http2.ServerHttp2Stream, body: Buffer): void {
    // HealthCheckRequest { string service = 1 }: the same field-1 reader works.
    const service = readSpaceId(body);
    if (service !== '' && service !== HEALTH_SERVICE) {
      this.#fail(stream, GRPC_STATUS.NOT_FOUND, 'unknown service');
      return;
    }
    const reply = this.#servingStatus();
    if (stream.closed) return;
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(reply);
  }

  #fail(
    stream: http2.ServerHttp2Stream,
    status: number,
    message: string,
    extra?: http2.OutgoingHttpHeaders,
  ): void {
    if (stream.closed || stream.headersSent) return;
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(status),
        'grpc-message': encodeGrpcMessage(message),
        ...extra,
      },
      { endStream: true },
    );
  }

  async #handleMemory(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    path: string,
    body: Buffer,
  ): Promise<void> {
    const started = performance.now();
    const method = path.slice(MEMORY_PREFIX.length);
    const op = OPERATION_OF_METHOD[method] ?? OP.other;
    const timeoutMs = parseGrpcTimeout(headers['grpc-timeout']);
    const deadlineMs = Math.min(timeoutMs ?? this.#cfg.router.deadlineMs, MAX_TIMER_MS);
    const fwd: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': path,
      ':scheme': this.#scheme,
    };
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* ':' */ || HOP_HEADERS.has(name)) continue;
      fwd[name] = headers[name];
    }
    // The client closing its stream before the reply cancels the routed call: the attempt in
    // flight is reset and fails as CANCELLED (not retried). Cheaper than an AbortController
    // per call, which the Router would otherwise listen on.
    const call: ClientCall = { gone: false, upstream: null, children: null };
    const onClose = () => {
      if (!stream.headersSent) cancelCall(call);
    };
    // A plain listener, left in place: once the reply's headers are out it does nothing, and
    // the stream closes soon after (cheaper than once() + off() per call).
    stream.on('close', onClose);
    this.#inFlight++;
    this.#metrics.inFlight(1);
    let outcome = 'ok';
    try {
      if (Atomics.load(this.#control, C_DRAINING) === 1) {
        throw new RouteError('Unavailable', GRPC_STATUS.UNAVAILABLE, 'router is shutting down');
      }
      const options: ExecuteOptions =
        op === OP.consolidate
          ? // Consolidation may take long on a big space: bounded by the deadline only.
            { deadlineMs, operation: OPERATIONS[op], attemptTimeoutMs: Number.POSITIVE_INFINITY }
          : { deadlineMs, operation: OPERATIONS[op] };
      if (op === OP.query) {
        await this.#scatterGather(stream, fwd, body, options, call);
        return;
      }
      const spaceId = readSpaceId(body);
      if (spaceId === null) {
        throw new RouteError(
          'InvalidArgument',
          GRPC_STATUS.INVALID_ARGUMENT,
          'malformed request message',
        );
      }
      // An id-less Store gets its id here, once: every attempt and fallback replays it, so a
      // node that got the write before failing holds the same memory, not a duplicate.
      const request = op === OP.store ? assignMemoryId(body, randomUUID) : body;
      const router = this.#router;
      let decision =
        op === OP.store
          ? router.routeStore(spaceId)
          : op === OP.consolidate
            ? router.routeConsolidation(spaceId)
            : router.routeRecall(spaceId);
      if (this.#reader.epoch !== this.#epoch) this.#sync();
      const primaryId = decision.primary.id;
      decision = this.#avoidUnavailable(decision);
      const routed = await router.execute(
        decision,
        (ctx) => this.#forward(ctx, fwd, request, call),
        options,
      );
      const routing = routed.routing;
      if (routing.servedBy !== primaryId) routing.fallback = true;
      if (routing.fallback) this.#metrics.fallback(op);
      if (routed.value.status !== 0) outcome = 'upstream_error';
      this.#respond(stream, routed.value, routing);
    } catch (err) {
      let status: number;
      let message: string;
      if (err instanceof RouteError) {
        outcome = err.code;
        status = err.grpcStatus;
        message = err.message;
      } else {
        const s = toGrpcStatus(err);
        status = s.code;
        message = s.message;
        const code = (err as { code?: unknown })?.code;
        outcome = call.gone
          ? 'Cancelled'
          : err instanceof UpstreamError
            ? 'upstream_error'
            : typeof code === 'string'
              ? code === 'Aborted'
                ? 'Cancelled'
                : code
              : 'Unavailable';
      }
      this.#fail(stream, status, message, {
        'x-engram-error': outcome,
        'x-engram-epoch': String(this.#reader.epoch),
      });
    } finally {
      this.#inFlight--;
      this.#metrics.inFlight(-1);
      this.#metrics.request(
        op,
        OUTCOME_INDEX.get(outcome) ?? OUTCOME_INDEX.get('Unavailable')!,
        (performance.now() - started) / 1000,
      );
    }
  }

  /**
   * Moves nodes the control plane marked down or draining behind the others (the Router
   * already moves open breakers last). Allocates only when the placement has such a node.
   */
  #avoidUnavailable(decision: RoutingDecision): RoutingDecision {
    const replicas = decision.replicas;
    if (replicas.length === 0) return decision;
    let healthy = this.#isUp(decision.primary);
    for (let i = 0; i < replicas.length && healthy; i++) healthy = this.#isUp(replicas[i]!);
    if (healthy) return decision;
    const all = [decision.primary, ...replicas];
    const up = all.filter((n) => this.#isUp(n));
    if (up.length === 0) return decision;
    // Draining nodes get no new calls; down nodes stay as a last resort (checks lag).
    const down = all.filter((n) => !this.#isUp(n) && this.#stateOf(n) === NODE_STATE.down);
    const order = [...up, ...down];
    return { ...decision, primary: order[0]!, replicas: order.slice(1) };
  }

  #stateOf(node: NodeInfo): number {
    const index = this.#reader.nodeIndex(node.id);
    const slot = index < 0 ? -1 : this.#reader.nodeSlot(index);
    if (slot < 0 || slot >= MAX_NODE_SLOTS) return NODE_STATE.up;
    return Atomics.load(this.#control, C_NODE_STATE + slot);
  }

  #isUp(node: NodeInfo): boolean {
    return this.#stateOf(node) === NODE_STATE.up;
  }

  /**
   * One attempt: the exact request bytes over a pooled HTTP/2 session, the reply buffered
   * whole so the Router can retry or fail over before the client sees any header.
   */
  #forward(
    ctx: CallContext,
    headers: http2.OutgoingHttpHeaders,
    body: Buffer,
    call: ClientCall,
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const nodeId = ctx.node.id;
      if (call.gone) {
        reject(new UpstreamError(GRPC_STATUS.CANCELLED, 'cancelled by the client', nodeId));
        return;
      }
      let req: http2.ClientHttp2Stream;
      try {
        const session = this.#pool.acquireSession(nodeId);
        headers['grpc-timeout'] = formatGrpcTimeout(ctx.attemptDeadline.remaining());
        req = session.request(headers, REQUEST_OPTIONS);
      } catch (err) {
        // ConnectionFailed from the pool is retryable as it is; anything else: UNAVAILABLE.
        const code = (err as { code?: unknown })?.code;
        reject(
          code === 'ConnectionFailed'
            ? err
            : new UpstreamError(
                GRPC_STATUS.UNAVAILABLE,
                `node ${nodeId}: ${(err as Error).message}`,
                nodeId,
              ),
        );
        return;
      }
      call.upstream = req;
      const dispose = whenCancelled(ctx, () => {
        if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
      });
      let resHeaders: http2.IncomingHttpHeaders | null = null;
      let trailers: http2.IncomingHttpHeaders | null = null;
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('response', (h) => {
        resHeaders = h;
        if (h['grpc-status'] !== undefined) trailers = h; // trailers-only reply
      });
      req.on('trailers', (t) => {
        trailers = t;
      });
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        size += c.length;
      });
      req.on('error', NOOP);
      req.on('close', () => {
        dispose();
        if (call.upstream === req) call.upstream = null;
        if (call.gone) {
          reject(new UpstreamError(GRPC_STATUS.CANCELLED, 'cancelled by the client', nodeId));
          return;
        }
        if (resHeaders === null || trailers === null) {
          reject(
            new UpstreamError(
              GRPC_STATUS.UNAVAILABLE,
              `node ${nodeId}: stream closed without a reply (rst ${req.rstCode})`,
              nodeId,
            ),
          );
          return;
        }
        const t = trailers as http2.IncomingHttpHeaders;
        const status = Number(t['grpc-status'] ?? GRPC_STATUS.UNKNOWN);
        if (isNodeFailureStatus(status)) {
          const msg = t['grpc-message'];
          reject(
            new UpstreamError(
              status,
              `node ${nodeId}: ${typeof msg === 'string' ? decodeURIComponent(msg) : `status ${status}`}`,
              nodeId,
            ),
          );
          return;
        }
        resolve({
          status,
          headers: resHeaders,
          trailers: t,
          body:
            chunks.length === 1
              ? chunks[0]!
              : chunks.length === 0
                ? EMPTY
                : Buffer.concat(chunks, size),
        });
      });
      req.end(body);
    });
  }

  #servedByBytes(id: string): Buffer {
    let b = this.#servedBy.get(id);
    if (b === undefined) {
      b = Buffer.from(id);
      this.#servedBy.set(id, b);
    }
    return b;
  }

  #respond(stream: http2.ServerHttp2Stream, r: Reply, routing: RoutingInfo): void {
    if (stream.closed || stream.headersSent) return;
    if (r.status !== 0 || r.body.length === 0) {
      // Pass the node's error through as a trailers-only reply.
      const out: http2.OutgoingHttpHeaders = {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': String(r.status),
      };
      this.#setRoutingHeaders(out, routing);
      const msg = r.trailers['grpc-message'];
      if (msg !== undefined) out['grpc-message'] = msg;
      stream.respond(out, END_STREAM);
      return;
    }
    const strategy = STRATEGY_BYTES[routing.strategy as Strategy] ?? Buffer.from(routing.strategy);
    const framed =
      appendRouting(
        r.body,
        this.#servedByBytes(routing.servedBy),
        routing.attempts,
        routing.fallback,
        strategy,
        routing.tableEpoch,
      ) ?? r.body;
    const enc = r.headers['grpc-encoding'];
    stream.respond(
      enc === undefined
        ? { ':status': 200, 'content-type': 'application/grpc' }
        : { ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': enc },
      WAIT_FOR_TRAILERS,
    );
    const t: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };
    this.#setRoutingHeaders(t, routing);
    const nodeTrailers = r.trailers;
    for (const name in nodeTrailers) {
      if (name.charCodeAt(0) === 58 || name === 'grpc-status' || name.startsWith('x-engram-'))
        continue;
      t[name] = nodeTrailers[name];
    }
    stream.on('wantTrailers', () => stream.sendTrailers(t));
    stream.end(framed);
  }

  /** The table epoch as a header value, rebuilt only when the epoch changes. */
  /** RoutingInfo as trailing metadata, written into `out` (no intermediate object). */
  #setRoutingHeaders(out: http2.OutgoingHttpHeaders, routing: RoutingInfo): void {
    out['x-engram-served-by'] = routing.servedBy;
    out['x-engram-attempts'] = intString(routing.attempts);
    out['x-engram-fallback'] = routing.fallback ? 'true' : 'false';
    out['x-engram-strategy'] = routing.strategy;
    out['x-engram-epoch'] = this.#epochString(routing.tableEpoch);
  }

  #epochString(epoch: number): string {
    if (epoch !== this.#epochStringOf) {
      this.#epochStringOf = epoch;
      this.#epochStringValue = String(epoch);
    }
    return this.#epochStringValue;
  }

  /**
   * Query: one sub-query per distinct space, each routed by its own ScatterGather decision
   * (fallback per space) under the call's one deadline; partial results merge, failed spaces
   * become SpaceErrors. Decoding QueryRequest/Response is fine here: not the hot path.
   */
  async #scatterGather(
    stream: http2.ServerHttp2Stream,
    fwd: http2.OutgoingHttpHeaders,
    body: Buffer,
    options: ExecuteOptions,
    call: ClientCall,
  ): Promise<void> {
    const def = MemoryServiceDefinition.Query;
    if (body.length < FRAME_HEADER_BYTES || body[0] !== 0) {
      throw new RouteError(
        'InvalidArgument',
        GRPC_STATUS.INVALID_ARGUMENT,
        'malformed request message',
      );
    }
    let request: QueryRequest;
    try {
      request = def.requestDeserialize(body.subarray(FRAME_HEADER_BYTES)) as QueryRequest;
    } catch {
      throw new RouteError(
        'InvalidArgument',
        GRPC_STATUS.INVALID_ARGUMENT,
        'malformed QueryRequest',
      );
    }
    const spaces = [...new Set(request.spaceIds)];
    if (spaces.length === 0) {
      throw new RouteError('InvalidArgument', GRPC_STATUS.INVALID_ARGUMENT, 'space_ids is empty');
    }
    // Validates every id first (InvalidArgument for the whole call, as the Router's query()).
    const decisions = spaces.map((spaceId) => {
      try {
        return this.#router.routeDistributedQuery([spaceId])[0]!;
      } catch (err) {
        if ((err as { code?: unknown })?.code === 'InvalidArgument') throw err;
        return err as Error;
      }
    });
    if (this.#reader.epoch !== this.#epoch) this.#sync();
    const deadline = Deadline.after(options.deadlineMs ?? this.#cfg.router.deadlineMs);
    const perSpace: ExecuteOptions = { ...options, deadline };
    const subs: ClientCall[] = [];
    call.children = subs;
    const settled = await Promise.allSettled(
      spaces.map(async (spaceId, i) => {
        const d = decisions[i]!;
        if (d instanceof Error) throw d;
        const sub = frameMessage(
          def.requestSerialize({ spaceIds: [spaceId], cue: request.cue, limit: request.limit }),
        );
        const headers = { ...fwd };
        const primaryId = d.primary.id;
        // Each space its own upstream slot; the client's close cancels every one.
        const sub_: ClientCall = { gone: false, upstream: null, children: null };
        subs.push(sub_);
        const routed = await this.#router.execute(
          this.#avoidUnavailable(d),
          (ctx) => this.#forward(ctx, headers, sub, sub_),
          perSpace,
        );
        if (routed.routing.servedBy !== primaryId) routed.routing.fallback = true;
        return routed;
      }),
    );
    if (options.signal?.aborted)
      throw new RouteError('Cancelled', GRPC_STATUS.CANCELLED, 'cancelled by the client');
    const results: QueryResponse['results'][number][] = [];
    const errors: QueryResponse['errors'][number][] = [];
    const servedBy: string[] = [];
    let attempts = 0;
    let fallback = false;
    for (let i = 0; i < settled.length; i++) {
      const s = settled[i]!;
      const spaceId = spaces[i]!;
      if (s.status === 'rejected') {
        const st = toGrpcStatus(s.reason);
        const a = (s.reason as { attempts?: unknown })?.attempts;
        if (typeof a === 'number') attempts += a;
        errors.push({ spaceId, code: st.code, message: st.message });
        continue;
      }
      const { value, routing } = s.value;
      attempts += routing.attempts;
      fallback ||= routing.fallback;
      if (!servedBy.includes(routing.servedBy)) servedBy.push(routing.servedBy);
      if (value.status !== 0) {
        const m = value.trailers['grpc-message'];
        errors.push({
          spaceId,
          code: value.status,
          message: typeof m === 'string' ? decodeURIComponent(m) : '',
        });
        continue;
      }
      const res = def.responseDeserialize(value.body.subarray(FRAME_HEADER_BYTES)) as QueryResponse;
      for (const r of res.results) results.push(r);
      for (const e of res.errors) errors.push(e);
    }
    if (fallback) this.#metrics.fallback(OP.query);
    const routing = {
      servedBy: servedBy.join(','),
      attempts,
      fallback,
      strategy: STRATEGY.ScatterGather,
      tableEpoch: this.#reader.epoch,
    };
    const reply = frameMessage(def.responseSerialize({ results, errors, routing }));
    if (stream.closed || stream.headersSent) return;
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc' },
      { waitForTrailers: true },
    );
    stream.once('wantTrailers', () =>
      stream.sendTrailers({
        'grpc-status': '0',
        'x-engram-served-by': routing.servedBy,
        'x-engram-attempts': String(attempts),
        'x-engram-fallback': fallback ? 'true' : 'false',
        'x-engram-strategy': STRATEGY.ScatterGather,
        'x-engram-epoch': String(routing.tableEpoch),
      }),
    );
    stream.end(reply);
  }
}
