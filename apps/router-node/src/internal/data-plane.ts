import http2 from 'node:http2';
import type { Server as NetServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BreakerTable, ConsecutiveFailures, REJECTED } from '@engram/breaker';
import { ConnectionPool, type PoolCredentials } from '@engram/pool';
import { MemoryServiceDefinition, type QueryRequest, type QueryResponse } from '@engram/proto';
import { backoffDelay, SharedRetryBudget } from '@engram/retry';
import { TableReader } from '@engram/ring';
import type { Logger } from 'pino';
import type { RouterNodeConfig } from './config.js';
import { GRPC_STATUS, RouteError, type RouterNodeErrorCode } from './errors.js';
import {
  C_DRAINING,
  C_NODE_STATE,
  C_PARTITIONED,
  controlWords,
  MAX_NODE_SLOTS,
  NODE_STATE,
  OP,
  OUTCOME_INDEX,
} from './layout.js';
import { MetricsRecorder } from './metrics.js';
import {
  appendRouting,
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
  /** Response headers (minus :status), to pass through. */
  headers: http2.IncomingHttpHeaders;
  /** Trailers (or the headers of a trailers-only reply). */
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** Retryable failure of one attempt (transport error, UNAVAILABLE, refused stream). */
class AttemptFailed extends Error {
  constructor(
    readonly code: RouterNodeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** One routed call in flight; also the cancellation/deadline handle. */
class Call {
  upstream: http2.ClientHttp2Stream | null = null;
  timer: NodeJS.Timeout | null = null;
  expired = false;
  cancelled = false;
  reject: ((e: Error) => void) | null = null;
  /** Sub-calls of a scatter-gather, aborted with this one. */
  children: Call[] | null = null;
  constructor(
    readonly deadlineAt: number,
    readonly path: string,
    readonly headers: http2.OutgoingHttpHeaders,
  ) {}
  abort(reason: 'deadline' | 'cancel'): void {
    if (reason === 'deadline') this.expired = true;
    else this.cancelled = true;
    const up = this.upstream;
    if (up !== null && !up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    const reject = this.reject;
    this.reject = null;
    if (reject !== null) reject(this.stopError());
    if (this.children !== null) for (const c of this.children) c.abort(reason);
  }
  stopError(): RouteError {
    return this.cancelled
      ? new RouteError('Cancelled', GRPC_STATUS.CANCELLED, 'cancelled by the client')
      : new RouteError('DeadlineExceeded', GRPC_STATUS.DEADLINE_EXCEEDED, 'deadline exceeded');
  }
}

interface Routed {
  reply: Reply;
  nodeIndex: number;
  attempts: number;
  fallback: boolean;
}

const EMPTY = Buffer.alloc(0);

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
  #placement: Uint16Array;
  #order: Int32Array;
  // Per table index, refreshed when the epoch moves:
  #epoch = -1;
  #poolSlot: Int32Array = new Int32Array(0);
  #breakerSlot: Int32Array = new Int32Array(0);
  #servedBy: Buffer[] = [];
  #ids: string[] = [];
  #localIndex = -1;
  #inFlight = 0;
  #drainWaiters: (() => void)[] = [];
  readonly #sessions = new Set<http2.ServerHttp2Session>();

  constructor(init: DataPlaneInit, log: Logger) {
    this.#cfg = init.config;
    this.#reader = new TableReader(init.table);
    this.#placement = new Uint16Array(8);
    this.#order = new Int32Array(8);
    this.#control = controlWords(init.state);
    this.#metrics = new MetricsRecorder(init.state, init.thread);
    this.#breakers = new BreakerTable({
      buffer: init.breakers,
      trip: new ConsecutiveFailures(init.config.router.breakerThreshold),
      openTimeoutMs: init.config.router.breakerTimeoutMs,
      onStateChange: (slot, from, to, reason) => {
        const id = this.#nodeOfSlot(slot);
        log.warn(
          { event: 'breaker', node: id, slot, from, to, reason },
          `breaker ${id}: ${from} -> ${to}`,
        );
      },
    });
    this.#budget = new SharedRetryBudget({ buffer: init.budget, ...init.config.retryBudget });
    const sessionsBySlot = new Map<string, number>();
    this.#pool = new ConnectionPool({
      channelsPerNode: init.config.pool.channelsPerNode,
      connectTimeoutMs: init.config.pool.connectTimeoutMs,
      keepaliveIntervalMs: init.config.pool.keepaliveIntervalMs,
      keepaliveTimeoutMs: init.config.pool.keepaliveTimeoutMs,
      credentials: init.upstreamCredentials,
      onConnection: (e) => {
        if (e.kind !== 'session') return;
        const n = (sessionsBySlot.get(e.nodeId) ?? 0) + (e.type === 'open' ? 1 : -1);
        sessionsBySlot.set(e.nodeId, n);
        const index = this.#reader.nodeIndex(e.nodeId);
        if (index >= 0) this.#metrics.poolSessions(this.#reader.nodeSlot(index), n);
      },
    });
    const settings: http2.Settings = { maxConcurrentStreams: 1000 };
    const onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) =>
      this.#onStream(stream, headers);
    if (init.ingressTls !== null) {
      const t = init.ingressTls;
      this.server = http2.createSecureServer({
        cert: t.cert,
        key: t.key,
        ...(t.ca !== undefined ? { ca: t.ca, requestCert: true, rejectUnauthorized: true } : {}),
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
    return left;
  }

  #nodeOfSlot(slot: number): string {
    const r = this.#reader;
    for (let i = 0; i < r.nodes.length; i++) if (r.nodeSlot(i) === slot) return r.nodes[i]!.id;
    return `slot-${slot}`;
  }

  /** Follows a new table epoch: pool membership and per-index caches. */
  #sync(): void {
    const r = this.#reader;
    if (!r.published) return;
    r.refresh();
    if (r.epoch === this.#epoch) return;
    const nodes = r.nodes;
    const poolSlot = new Int32Array(nodes.length);
    const breakerSlot = new Int32Array(nodes.length);
    const servedBy: Buffer[] = [];
    const ids: string[] = [];
    const keep = new Set<string>();
    for (let i = 0; i < nodes.length; i++) {
      const n = nodes[i]!;
      keep.add(n.id);
      poolSlot[i] = this.#pool.addNode(n.id, n.address);
      breakerSlot[i] = r.nodeSlot(i);
      servedBy.push(Buffer.from(n.id));
      ids.push(n.id);
    }
    for (const id of this.#pool.nodeIds()) {
      if (!keep.has(id)) void this.#pool.removeNode(id).catch(() => {});
    }
    const size = Math.max(8, r.maxPlacementSize);
    if (this.#placement.length < size) {
      this.#placement = new Uint16Array(size);
      this.#order = new Int32Array(size);
    }
    this.#poolSlot = poolSlot;
    this.#breakerSlot = breakerSlot;
    this.#servedBy = servedBy;
    this.#ids = ids;
    this.#localIndex = this.#cfg.localNodeId === null ? -1 : r.nodeIndex(this.#cfg.localNodeId);
    this.#epoch = r.epoch;
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = headers[':path'] ?? '';
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    const max = this.#cfg.router.maxMessageBytes + FRAME_HEADER_BYTES;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) tooLarge = true;
      else chunks.push(c);
    });
    stream.once('end', () => {
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
        this.#fail(stream, GRPC_STATUS.UNIMPLEMENTED, 'Health/Watch is not served by the router');
      } else {
        this.#fail(stream, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${path}`);
      }
    });
  }

  #handleHealth(stream: http2.ServerHttp2Stream, body: Buffer): void {
    // HealthCheckRequest { string service = 1 }: the same field-1 reader works.
    const service = readSpaceId(body);
    if (service !== '' && service !== 'engram.v1.MemoryService') {
      this.#fail(stream, GRPC_STATUS.NOT_FOUND, 'unknown service');
      return;
    }
    const draining = Atomics.load(this.#control, C_DRAINING) === 1;
    // HealthCheckResponse { status = 1 }: SERVING = 1, NOT_SERVING = 2.
    const reply = frameMessage(Uint8Array.of(0x08, draining ? 2 : 1));
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
    const deadlineMs = Math.min(timeoutMs ?? this.#cfg.router.deadlineMs, 2_147_483_647);
    const fwd: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': path,
      ':scheme': 'http',
    };
    for (const name in headers) {
      if (name.charCodeAt(0) === 58 /* ':' */ || HOP_HEADERS.has(name)) continue;
      fwd[name] = headers[name];
    }
    const call = new Call(Date.now() + deadlineMs, path, fwd);
    call.timer = setTimeout(() => call.abort('deadline'), deadlineMs);
    const onClose = () => {
      if (!stream.headersSent) call.abort('cancel');
    };
    stream.once('close', onClose);
    this.#inFlight++;
    this.#metrics.inFlight(1);
    let outcome = 'ok';
    try {
      if (Atomics.load(this.#control, C_DRAINING) === 1) {
        throw new RouteError('Unavailable', GRPC_STATUS.UNAVAILABLE, 'router is shutting down');
      }
      if (op === OP.query) {
        await this.#scatterGather(stream, call, body);
        return;
      }
      const spaceId = readSpaceId(body);
      if (spaceId === null || spaceId === '') {
        throw new RouteError(
          'InvalidArgument',
          GRPC_STATUS.INVALID_ARGUMENT,
          spaceId === null ? 'malformed request message' : 'space_id is required',
        );
      }
      if (spaceId.length > 1024) {
        throw new RouteError(
          'InvalidArgument',
          GRPC_STATUS.INVALID_ARGUMENT,
          'space_id is longer than 1024 characters',
        );
      }
      const t0 = performance.now();
      const { count, strategy } = this.#decide(op, spaceId);
      const order = Array.from(this.#order.subarray(0, count));
      this.#metrics.decision((performance.now() - t0) / 1000);
      const routed = await this.#execute(op, call, body, order, this.#placement[0]!);
      const r = routed.reply;
      if (r.status !== 0) outcome = 'upstream_error';
      this.#respond(stream, r, routed, strategy);
    } catch (err) {
      const e = err instanceof RouteError ? err : toRouteError(err);
      outcome = e.code;
      this.#fail(stream, e.grpcStatus, e.message, {
        'x-engram-error': e.code,
        'x-engram-epoch': String(this.#reader.epoch),
      });
    } finally {
      if (call.timer !== null) clearTimeout(call.timer);
      stream.off('close', onClose);
      this.#inFlight--;
      this.#metrics.inFlight(-1);
      this.#metrics.request(
        op,
        OUTCOME_INDEX.get(outcome) ?? 0,
        (performance.now() - started) / 1000,
      );
    }
  }

  /**
   * Fills `#order` with the node indexes to try, in order, and returns how many. Nodes
   * marked down or draining are left out while any other placement node is up.
   */
  #decide(op: number, spaceId: string): { count: number; strategy: Strategy } {
    const reader = this.#reader;
    let n = reader.lookupInto(spaceId, this.#placement);
    if (reader.epoch !== this.#epoch) this.#sync();
    if (n > this.#placement.length) n = this.#placement.length;
    const cfg = this.#cfg.router;
    const partitioned = Atomics.load(this.#control, C_PARTITIONED) === 1;
    let strategy: Strategy;
    if (partitioned || (op === OP.consolidate && this.#localIndex >= 0)) {
      strategy = STRATEGY.LocalOnly;
      const local = this.#localIndex;
      let holds = false;
      for (let i = 0; i < n; i++) if (this.#placement[i] === local) holds = true;
      if (local < 0 || !holds) {
        throw new RouteError(
          'NoLocalData',
          GRPC_STATUS.UNAVAILABLE,
          local < 0
            ? 'partitioned and no localNodeId is configured'
            : `partitioned and the local node ${this.#cfg.localNodeId} does not hold space ${spaceId}`,
        );
      }
      this.#order[0] = local;
      return { count: 1, strategy };
    }
    let fallbackAllowed: boolean;
    if (op === OP.store) {
      strategy = STRATEGY.Primary;
      fallbackAllowed = cfg.storeFallback;
    } else if (op === OP.consolidate) {
      strategy = STRATEGY.Primary;
      fallbackAllowed = false;
    } else {
      strategy = STRATEGY.PrimaryWithFallback;
      fallbackAllowed = cfg.replicaFallback;
    }
    const limit = fallbackAllowed ? n : Math.min(n, 1);
    let count = 0;
    for (let i = 0; i < limit; i++) {
      const idx = this.#placement[i]!;
      const slot = this.#breakerSlot[idx] ?? -1;
      if (
        slot >= 0 &&
        slot < MAX_NODE_SLOTS &&
        Atomics.load(this.#control, C_NODE_STATE + slot) !== NODE_STATE.up
      )
        continue;
      this.#order[count++] = idx;
    }
    if (count === 0) {
      // Nothing up: try the placement anyway (health checks lag; the breaker still guards).
      for (let i = 0; i < limit; i++) this.#order[count++] = this.#placement[i]!;
    }
    if (count === 0) {
      throw new RouteError(
        'NoAssignment',
        GRPC_STATUS.UNAVAILABLE,
        `no node holds space ${spaceId}`,
      );
    }
    return { count, strategy };
  }

  /** Primary first, then the rest of `#order`, each behind its breaker; retry rounds with backoff under the budget and one deadline. */
  async #execute(
    op: number,
    call: Call,
    body: Buffer,
    order: readonly number[],
    primary: number,
  ): Promise<Routed> {
    const cfg = this.#cfg.router;
    this.#budget.recordRequest();
    let attempts = 0;
    let rejected = 0;
    let lastError: AttemptFailed | null = null;
    let prevDelay = 0;
    for (let round = 0; round <= cfg.maxRetries; round++) {
      if (round > 0) {
        if (!this.#budget.tryRetry()) {
          throw new RouteError(
            'RetryBudgetExhausted',
            GRPC_STATUS.UNAVAILABLE,
            `retry budget exhausted after ${attempts} attempts: ${lastError?.message ?? 'breakers open'}`,
            attempts,
          );
        }
        const delay = backoffDelay(
          round - 1,
          prevDelay,
          { baseMs: cfg.retryBaseDelayMs, maxMs: cfg.retryMaxDelayMs },
          Math.random,
        );
        prevDelay = delay;
        if (Date.now() + delay >= call.deadlineAt) break;
        await this.#sleep(call, delay);
      }
      for (let i = 0; i < order.length; i++) {
        const idx = order[i]!;
        const slot = this.#breakerSlot[idx]!;
        const admission = this.#breakers.tryAcquire(slot);
        if (admission === REJECTED) {
          rejected++;
          continue;
        }
        attempts++;
        if (attempts > 1) this.#metrics.retry(op);
        try {
          const reply = await this.#forward(call, idx, body);
          if (reply.status === GRPC_STATUS.UNAVAILABLE) {
            throw new AttemptFailed(
              'ConnectionFailed',
              `node ${this.#ids[idx]} answered UNAVAILABLE`,
            );
          }
          this.#breakers.onSuccess(slot, admission);
          const fallback = idx !== primary;
          if (fallback) this.#metrics.fallback(op);
          return { reply, nodeIndex: idx, attempts, fallback };
        } catch (err) {
          if (call.cancelled || call.expired) {
            this.#breakers.release(slot, admission);
            throw call.stopError();
          }
          this.#breakers.onFailure(slot, admission);
          lastError =
            err instanceof AttemptFailed
              ? err
              : new AttemptFailed('ConnectionFailed', String((err as Error)?.message ?? err));
        }
      }
      if (Date.now() >= call.deadlineAt) break;
    }
    if (Date.now() >= call.deadlineAt || call.expired) {
      throw new RouteError(
        'DeadlineExceeded',
        GRPC_STATUS.DEADLINE_EXCEEDED,
        `deadline exceeded after ${attempts} attempts`,
        attempts,
      );
    }
    if (attempts === 0 && rejected > 0) {
      throw new RouteError(
        'CircuitBreakerOpen',
        GRPC_STATUS.UNAVAILABLE,
        'circuit breaker open for every target node',
        attempts,
      );
    }
    if (order.length === 1) {
      throw new RouteError(
        'ConnectionFailed',
        GRPC_STATUS.UNAVAILABLE,
        `${lastError?.message ?? 'connection failed'} (${attempts} attempts)`,
        attempts,
      );
    }
    throw new RouteError(
      'AllReplicasFailed',
      GRPC_STATUS.UNAVAILABLE,
      `all replicas failed after ${attempts} attempts; last: ${lastError?.message ?? 'breakers open'}`,
      attempts,
    );
  }

  #sleep(call: Call, ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        call.reject = null;
        resolve();
      }, ms);
      call.reject = (e) => {
        clearTimeout(t);
        reject(e);
      };
    });
  }

  /** One attempt: the exact request bytes over a pooled HTTP/2 session, reply buffered. */
  #forward(call: Call, index: number, body: Buffer): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      if (call.cancelled || call.expired) {
        reject(call.stopError());
        return;
      }
      let session: http2.ClientHttp2Session;
      try {
        session = this.#pool.acquireSession(this.#poolSlot[index]!);
      } catch (err) {
        reject(
          new AttemptFailed(
            'ConnectionFailed',
            `node ${this.#ids[index]}: ${(err as Error).message}`,
          ),
        );
        return;
      }
      const headers = call.headers;
      headers['grpc-timeout'] = formatGrpcTimeout(call.deadlineAt - Date.now());
      let req: http2.ClientHttp2Stream;
      try {
        req = session.request(headers, { endStream: false });
      } catch (err) {
        reject(
          new AttemptFailed(
            'ConnectionFailed',
            `node ${this.#ids[index]}: ${(err as Error).message}`,
          ),
        );
        return;
      }
      call.upstream = req;
      call.reject = reject;
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
      req.on('error', () => {});
      req.once('close', () => {
        call.upstream = null;
        if (call.reject !== reject) return; // already settled by abort()
        call.reject = null;
        if (resHeaders === null || trailers === null) {
          const code = req.rstCode;
          reject(
            new AttemptFailed(
              'ConnectionFailed',
              `node ${this.#ids[index]}: stream closed without a reply (rst ${code})`,
            ),
          );
          return;
        }
        const status = Number(trailers['grpc-status'] ?? GRPC_STATUS.UNKNOWN);
        const h = resHeaders as http2.IncomingHttpHeaders;
        resolve({
          status,
          headers: h,
          trailers: trailers as http2.IncomingHttpHeaders,
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

  #respond(stream: http2.ServerHttp2Stream, r: Reply, routed: Routed, strategy: Strategy): void {
    if (stream.closed || stream.headersSent) return;
    const idx = routed.nodeIndex;
    const meta = {
      'x-engram-served-by': this.#ids[idx]!,
      'x-engram-attempts': String(routed.attempts),
      'x-engram-fallback': routed.fallback ? 'true' : 'false',
      'x-engram-strategy': strategy,
      'x-engram-epoch': String(this.#epoch),
    };
    if (r.status !== 0 || r.body.length === 0) {
      // Pass the node's error through as a trailers-only reply.
      const out: http2.OutgoingHttpHeaders = {
        ':status': 200,
        'content-type': 'application/grpc',
        ...meta,
      };
      out['grpc-status'] = String(r.status);
      const msg = r.trailers['grpc-message'];
      if (msg !== undefined) out['grpc-message'] = msg;
      stream.respond(out, { endStream: true });
      return;
    }
    const framed =
      appendRouting(
        r.body,
        this.#servedBy[idx]!,
        routed.attempts,
        routed.fallback,
        STRATEGY_BYTES[strategy],
        this.#epoch,
      ) ?? r.body;
    const out: http2.OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc' };
    const enc = r.headers['grpc-encoding'];
    if (enc !== undefined) out['grpc-encoding'] = enc;
    stream.respond(out, { waitForTrailers: true });
    stream.once('wantTrailers', () => {
      const t: http2.OutgoingHttpHeaders = { 'grpc-status': '0', ...meta };
      for (const name in r.trailers) {
        if (name.charCodeAt(0) === 58 || name === 'grpc-status' || name.startsWith('x-engram-'))
          continue;
        t[name] = r.trailers[name];
      }
      stream.sendTrailers(t);
    });
    stream.end(framed);
  }

  /** Query: one sub-query per space, each routed like a recall; partial results merge. */
  async #scatterGather(stream: http2.ServerHttp2Stream, call: Call, body: Buffer): Promise<void> {
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
    const results: QueryResponse['results'][number][] = [];
    const errors: QueryResponse['errors'][number][] = [];
    let attempts = 0;
    let fallback = false;
    const servedBy = new Set<string>();
    const t0 = performance.now();
    await Promise.all(
      spaces.map(async (spaceId) => {
        try {
          if (spaceId === '' || spaceId.length > 1024) {
            throw new RouteError('InvalidArgument', GRPC_STATUS.INVALID_ARGUMENT, 'bad space_id');
          }
          const { count } = this.#decide(OP.recall, spaceId);
          // Copied before the next space's decision reuses #order and #placement.
          const order = Array.from(this.#order.subarray(0, count));
          const primary = this.#placement[0]!;
          const sub = frameMessage(
            def.requestSerialize({ spaceIds: [spaceId], cue: request.cue, limit: request.limit }),
          );
          const subCall = new Call(call.deadlineAt, call.path, { ...call.headers });
          if (call.children === null) call.children = [];
          call.children.push(subCall);
          const routed = await this.#execute(OP.query, subCall, sub, order, primary);
          attempts += routed.attempts;
          fallback ||= routed.fallback;
          servedBy.add(this.#ids[routed.nodeIndex]!);
          if (routed.reply.status !== 0) {
            errors.push({
              spaceId,
              code: routed.reply.status,
              message: String(routed.reply.trailers['grpc-message'] ?? ''),
            });
            return;
          }
          const res = def.responseDeserialize(
            routed.reply.body.subarray(FRAME_HEADER_BYTES),
          ) as QueryResponse;
          results.push(...res.results);
          errors.push(...res.errors);
        } catch (err) {
          if (call.cancelled) throw call.stopError();
          const e = err instanceof RouteError ? err : toRouteError(err);
          errors.push({ spaceId, code: e.grpcStatus, message: `${e.code}: ${e.message}` });
        }
      }),
    );
    this.#metrics.decision((performance.now() - t0) / 1000 / spaces.length);
    const order = new Map(spaces.map((s, i) => [s, i]));
    results.sort((a, b) => order.get(a.spaceId)! - order.get(b.spaceId)!);
    const routing = {
      servedBy: [...servedBy].sort().join(','),
      attempts,
      fallback,
      strategy: STRATEGY.ScatterGather,
      tableEpoch: this.#epoch,
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
        'x-engram-epoch': String(this.#epoch),
      }),
    );
    stream.end(reply);
  }
}

function toRouteError(err: unknown): RouteError {
  if (err instanceof AttemptFailed)
    return new RouteError(err.code, GRPC_STATUS.UNAVAILABLE, err.message);
  return new RouteError(
    'Unavailable',
    GRPC_STATUS.INTERNAL,
    `router error: ${(err as Error)?.message ?? String(err)}`,
  );
}
