import { randomUUID } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BreakerTable, ConsecutiveFailures } from '@engram/breaker';
import {
  CLOSE,
  encodeHeaderBlock,
  H2_ERROR,
  H2Server,
  type H2Stream,
  type StreamHandler,
} from '@engram/h2';
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
  headerSafe,
  isValidFieldName,
  isValidFieldValue,
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
  'te',
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
  /** Response headers (`[name, value, …]`), to pass through grpc-encoding. */
  headers: string[];
  /** Trailers (or the headers of a trailers-only reply). */
  trailers: string[];
  body: Buffer;
}

/** The value of header `name` in a `[name, value, …]` list, or undefined. */
function headerValue(list: readonly string[], name: string): string | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
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
  upstream: H2Stream | null;
  /** Per-space sub-calls of a scatter-gather. */
  children: ClientCall[] | null;
}

function cancelCall(call: ClientCall): void {
  call.gone = true;
  const up = call.upstream;
  if (up !== null && !up.closed) up.reset(H2_ERROR.CANCEL);
  if (call.children !== null) for (const c of call.children) cancelCall(c);
}

const CALL_KIND = { unary: 0, watch: 1 } as const;

/**
 * One request stream on the ingress: buffers the request (unary calls are replayed on retry
 * and fall-back), then hands it to the data plane. Also the stream's handler, so a call costs
 * no closures.
 */
class IngressCall implements StreamHandler, ClientCall {
  gone = false;
  upstream: H2Stream | null = null;
  children: ClientCall[] | null = null;
  kind: number = CALL_KIND.unary;
  #chunks: Buffer[] = [];
  #size = 0;
  #tooLarge = false;

  constructor(
    readonly plane: DataPlane,
    readonly stream: H2Stream,
    readonly maxBytes: number,
  ) {}

  onHeaders(_s: H2Stream, _trailers: string[], end: boolean): void {
    // Request trailers carry nothing a unary call uses, but they can end the request.
    if (end) this.requestComplete();
  }

  onData(_s: H2Stream, chunk: Buffer, end: boolean): void {
    if (chunk.length > 0 && !this.#tooLarge) {
      this.#size += chunk.length;
      if (this.#size > this.maxBytes) {
        this.#tooLarge = true;
        this.#chunks.length = 0;
      } else this.#chunks.push(chunk);
    }
    if (end) this.requestComplete();
  }

  onClose(_s: H2Stream, code: number): void {
    if (this.kind === CALL_KIND.watch) this.plane.watchEnded(this.stream);
    // The client left before the reply: the routed call is cancelled (the attempt in flight
    // is reset and fails as CANCELLED, not retried).
    if (code !== CLOSE.OK) cancelCall(this);
  }

  requestComplete(): void {
    const chunks = this.#chunks;
    const body =
      chunks.length === 1
        ? chunks[0]!
        : chunks.length === 0
          ? EMPTY
          : Buffer.concat(chunks, this.#size);
    this.#chunks = [];
    this.plane.dispatch(this, this.#tooLarge, body);
  }
}

/** One attempt's upstream stream: collects the node's reply, settles the attempt's promise. */
class Attempt implements StreamHandler {
  headers: string[] | null = null;
  trailers: string[] | null = null;
  /** Unregisters the attempt's cancel callback (set once the stream exists). */
  dispose: () => void = NOOP;
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(
    readonly nodeId: string,
    readonly call: ClientCall,
    readonly resolve: (r: Reply) => void,
    readonly reject: (e: unknown) => void,
  ) {}

  onHeaders(_s: H2Stream, h: string[], end: boolean): void {
    if (this.headers === null) {
      this.headers = h;
      if (end) this.trailers = h; // trailers-only reply
    } else this.trailers = h;
  }

  onData(_s: H2Stream, chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  onClose(s: H2Stream, code: number): void {
    this.dispose();
    const call = this.call;
    if (call.upstream === s) call.upstream = null;
    const nodeId = this.nodeId;
    if (call.gone) {
      this.reject(new UpstreamError(GRPC_STATUS.CANCELLED, 'cancelled by the client', nodeId));
      return;
    }
    const t = this.trailers;
    // A complete reply (headers and trailers) stands whatever ended the stream after it: a
    // node may stop an upload it no longer needs with RST_STREAM once it has answered.
    if (this.headers === null || t === null) {
      const why =
        code === CLOSE.CONNECTION_LOST
          ? 'connection lost'
          : code >= 0
            ? `stream reset (code ${code})`
            : 'stream closed without a reply';
      this.reject(new UpstreamError(GRPC_STATUS.UNAVAILABLE, `node ${nodeId}: ${why}`, nodeId));
      return;
    }
    const raw = headerValue(t, 'grpc-status');
    const status = raw === undefined ? GRPC_STATUS.UNKNOWN : Number(raw);
    if (isNodeFailureStatus(status)) {
      const msg = headerValue(t, 'grpc-message');
      this.reject(
        new UpstreamError(
          status,
          `node ${nodeId}: ${msg !== undefined ? safeDecode(msg) : `status ${status}`}`,
          nodeId,
        ),
      );
      return;
    }
    const chunks = this.#chunks;
    this.resolve({
      status,
      headers: this.headers,
      trailers: t,
      body:
        chunks.length === 1
          ? chunks[0]!
          : chunks.length === 0
            ? EMPTY
            : Buffer.concat(chunks, this.#size),
    });
  }
}

function badHeader(name: string, value: string): RouteError {
  return new RouteError(
    'InvalidArgument',
    GRPC_STATUS.INVALID_ARGUMENT,
    `malformed request header ${JSON.stringify(name)}${value === '' ? '' : ` = ${JSON.stringify(value)}`}`,
  );
}

/** `decodeURIComponent` that keeps malformed percent-encoding as it came. */
function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
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
const NOOP = (): void => {};
/** Where `#upstreamHeaders` leaves the per-attempt values. */
const AUTHORITY_AT = 7;
const TIMEOUT_AT = 9;
const OK_TRAILERS: readonly string[] = ['grpc-status', '0'];
/** `:status 200`, `content-type application/grpc`: the header block of every reply, encoded once. */
const REPLY_HEADERS = encodeHeaderBlock([':status', '200', 'content-type', 'application/grpc']);
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
  /** The listening `net.Server` (a `tls.Server` with ingress TLS). */
  readonly server: NetServer;
  readonly #ingress: H2Server;
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
  readonly #servedByHeaders = new Map<string, string>();
  #inFlight = 0;
  #epochStringOf = -1;
  #epochStringValue = '-1';
  /** `:scheme` of upstream requests. */
  readonly #scheme: 'http' | 'https';
  readonly #stopGc: () => void;
  /** Largest request frame buffered (message + gRPC frame header). */
  readonly #maxRequestBytes: number;
  /** Open Health/Watch streams: told NOT_SERVING and ended when draining starts. */
  readonly #watchers = new Map<H2Stream, boolean>();

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
        if (e.kind !== 'h2') return;
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
    this.#maxRequestBytes = init.config.router.maxMessageBytes + FRAME_HEADER_BYTES;
    const t = init.ingressTls;
    this.#ingress = new H2Server({
      settings: {
        maxConcurrentStreams: init.config.listen.maxConcurrentStreams,
        maxHeaderListSize: init.config.listen.maxHeaderListBytes,
      },
      idleTimeoutMs: init.config.listen.idleTimeoutMs,
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
        const call = new IngressCall(this, stream, this.#maxRequestBytes);
        stream.handler = call;
        if (stream.remoteEnded) call.requestComplete();
      },
    });
    this.server = this.#ingress.server;
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
    // Watchers learn NOT_SERVING, then their streams end so the connections can close.
    for (const [w, known] of this.#watchers) {
      if (w.closed) continue;
      if (known) w.sendData(HEALTH_NOT_SERVING, false);
      w.sendTrailers(OK_TRAILERS);
    }
    this.#watchers.clear();
    // GOAWAY: clients open no new streams; a connection closes once its streams have ended
    // (replies and trailers written), which is what "no call lost" needs.
    await this.#ingress.shutdown(graceMs);
    const left = this.#inFlight;
    this.#ingress.destroy();
    await this.#pool.close();
    this.#stopGc();
    return left;
  }

  /** A Health/Watch stream ended (client left, or drained). */
  watchEnded(stream: H2Stream): void {
    this.#watchers.delete(stream);
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

  /** A complete request from the ingress: routes it by method. */
  dispatch(call: IngressCall, tooLarge: boolean, body: Buffer): void {
    const stream = call.stream;
    const headers = stream.headers!;
    if (tooLarge) {
      this.#fail(
        stream,
        GRPC_STATUS.RESOURCE_EXHAUSTED,
        `request larger than ${this.#maxRequestBytes} bytes`,
      );
      return;
    }
    const path = headerValue(headers, ':path') ?? '';
    if (path.startsWith(MEMORY_PREFIX)) {
      void this.#handleMemory(call, headers, path, body);
    } else if (path === HEALTH_CHECK_PATH) {
      this.#handleHealth(stream, body);
    } else if (path === HEALTH_WATCH_PATH) {
      call.kind = CALL_KIND.watch;
      this.#handleWatch(stream, body);
    } else {
      this.#fail(stream, GRPC_STATUS.UNIMPLEMENTED, `unknown method ${path}`);
    }
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
  #handleWatch(stream: H2Stream, body: Buffer): void {
    const service = readSpaceId(body);
    if (service === null) {
      this.#fail(stream, GRPC_STATUS.INVALID_ARGUMENT, 'malformed HealthCheckRequest');
      return;
    }
    if (stream.closed) return;
    stream.sendHeaders(REPLY_HEADERS, false);
    const known = service === '' || service === HEALTH_SERVICE;
    const status = known ? this.#servingStatus() : HEALTH_SERVICE_UNKNOWN;
    if (status === HEALTH_NOT_SERVING && Atomics.load(this.#control, C_DRAINING) === 1) {
      stream.sendData(status, false);
      stream.sendTrailers(OK_TRAILERS);
      return;
    }
    stream.sendData(status, false);
    this.#watchers.set(stream, known);
  }

  #handleHealth(stream: H2Stream, body: Buffer): void {
    // HealthCheckRequest { string service = 1 }: the same field-1 reader works.
    const service = readSpaceId(body);
    if (service !== '' && service !== HEALTH_SERVICE) {
      this.#fail(stream, GRPC_STATUS.NOT_FOUND, 'unknown service');
      return;
    }
    const reply = this.#servingStatus();
    if (stream.closed) return;
    stream.sendHeaders(REPLY_HEADERS, false);
    stream.sendData(reply, false);
    stream.sendTrailers(OK_TRAILERS);
  }

  /** A trailers-only error reply (`extra`: more `[name, value, …]` pairs). */
  #fail(stream: H2Stream, status: number, message: string, extra?: readonly string[]): void {
    if (stream.closed || stream.localEnded || stream.sentHeaders) return;
    const out = [
      ':status',
      '200',
      'content-type',
      'application/grpc',
      'grpc-status',
      String(status),
      'grpc-message',
      encodeGrpcMessage(message),
    ];
    if (extra !== undefined) for (const v of extra) out.push(v);
    stream.sendHeaders(out, true);
  }

  /**
   * The upstream header list of a call: pseudo-headers, then the client's metadata minus
   * hop-by-hop headers. `:authority` and `grpc-timeout` are set per attempt in place
   * (`AUTHORITY_AT`, `TIMEOUT_AT`): a list is encoded synchronously by `request()`.
   */
  #upstreamHeaders(headers: readonly string[], path: string): string[] {
    const fwd = [
      ':method',
      'POST',
      ':scheme',
      this.#scheme,
      ':path',
      path,
      ':authority',
      '',
      'grpc-timeout',
      '',
      'te',
      'trailers',
    ];
    if (!isValidFieldValue(path) || path.includes(' ')) throw badHeader(':path', path);
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (name.charCodeAt(0) === 58 /* ':' */ || HOP_HEADERS.has(name)) continue;
      const value = headers[i + 1]!;
      // Checked here, not left to the node: a node refusing a malformed header would look
      // like a node failure and count on its breaker.
      if (!isValidFieldName(name)) throw badHeader(name, '');
      if (!isValidFieldValue(value)) throw badHeader(name, value);
      fwd.push(name, value);
    }
    return fwd;
  }

  async #handleMemory(
    call: IngressCall,
    headers: readonly string[],
    path: string,
    body: Buffer,
  ): Promise<void> {
    const stream = call.stream;
    const started = performance.now();
    const method = path.slice(MEMORY_PREFIX.length);
    const op = OPERATION_OF_METHOD[method] ?? OP.other;
    const timeoutMs = parseGrpcTimeout(headerValue(headers, 'grpc-timeout'));
    const deadlineMs = Math.min(timeoutMs ?? this.#cfg.router.deadlineMs, MAX_TIMER_MS);
    this.#inFlight++;
    this.#metrics.inFlight(1);
    let outcome = 'ok';
    try {
      if (Atomics.load(this.#control, C_DRAINING) === 1) {
        throw new RouteError('Unavailable', GRPC_STATUS.UNAVAILABLE, 'router is shutting down');
      }
      const fwd = this.#upstreamHeaders(headers, path);
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
      this.#fail(stream, status, message, [
        'x-engram-error',
        outcome,
        'x-engram-epoch',
        String(this.#reader.epoch),
      ]);
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
   * One attempt: the exact request bytes over a pooled `@engram/h2` connection, the reply
   * buffered whole so the Router can retry or fail over before the client sees any header.
   */
  #forward(ctx: CallContext, headers: string[], body: Buffer, call: ClientCall): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const node = ctx.node;
      const nodeId = node.id;
      if (call.gone) {
        reject(new UpstreamError(GRPC_STATUS.CANCELLED, 'cancelled by the client', nodeId));
        return;
      }
      let up: H2Stream;
      try {
        const connection = this.#pool.acquireH2(nodeId);
        headers[AUTHORITY_AT] = node.address;
        headers[TIMEOUT_AT] = formatGrpcTimeout(ctx.attemptDeadline.remaining());
        const attempt = new Attempt(nodeId, call, resolve, reject);
        up = connection.request(headers, body, attempt);
        attempt.dispose = whenCancelled(ctx, () => {
          if (!up.closed) up.reset(H2_ERROR.CANCEL);
        });
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
      call.upstream = up;
    });
  }

  /** A node id as a header value (percent-encoded unless printable ASCII), cached. */
  #servedByHeader(id: string): string {
    let h = this.#servedByHeaders.get(id);
    if (h === undefined) {
      h = headerSafe(id);
      // Query replies join several ids: bound the cache rather than key every combination.
      if (this.#servedByHeaders.size >= 4096) this.#servedByHeaders.clear();
      this.#servedByHeaders.set(id, h);
    }
    return h;
  }

  #servedByBytes(id: string): Buffer {
    let b = this.#servedBy.get(id);
    if (b === undefined) {
      b = Buffer.from(id);
      this.#servedBy.set(id, b);
    }
    return b;
  }

  #respond(stream: H2Stream, r: Reply, routing: RoutingInfo): void {
    if (stream.closed || stream.sentHeaders) return;
    if (r.status !== 0 || r.body.length === 0) {
      // Pass the node's error through as a trailers-only reply.
      const out = [
        ':status',
        '200',
        'content-type',
        'application/grpc',
        'grpc-status',
        String(r.status),
      ];
      this.#pushRoutingHeaders(out, routing);
      const msg = headerValue(r.trailers, 'grpc-message');
      if (msg !== undefined) out.push('grpc-message', msg);
      stream.sendHeaders(out, true);
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
    const enc = headerValue(r.headers, 'grpc-encoding');
    stream.sendHeaders(
      enc === undefined
        ? REPLY_HEADERS
        : [':status', '200', 'content-type', 'application/grpc', 'grpc-encoding', enc],
      false,
    );
    stream.sendData(framed, false);
    const t = ['grpc-status', '0'];
    this.#pushRoutingHeaders(t, routing);
    const nodeTrailers = r.trailers;
    for (let i = 0; i < nodeTrailers.length; i += 2) {
      const name = nodeTrailers[i]!;
      if (name.charCodeAt(0) === 58 || name === 'grpc-status' || name.startsWith('x-engram-'))
        continue;
      t.push(name, nodeTrailers[i + 1]!);
    }
    stream.sendTrailers(t);
  }

  /** RoutingInfo as trailing metadata, appended to a `[name, value, …]` list. */
  #pushRoutingHeaders(out: string[], routing: RoutingInfo): void {
    out.push(
      'x-engram-served-by',
      this.#servedByHeader(routing.servedBy),
      'x-engram-attempts',
      intString(routing.attempts),
      'x-engram-fallback',
      routing.fallback ? 'true' : 'false',
      'x-engram-strategy',
      routing.strategy,
      'x-engram-epoch',
      this.#epochString(routing.tableEpoch),
    );
  }

  /** The table epoch as a header value, rebuilt only when the epoch changes. */
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
    stream: H2Stream,
    fwd: string[],
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
        const headers = fwd.slice();
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
        const m = headerValue(value.trailers, 'grpc-message');
        errors.push({ spaceId, code: value.status, message: m === undefined ? '' : safeDecode(m) });
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
    if (stream.closed || stream.sentHeaders) return;
    stream.sendHeaders(REPLY_HEADERS, false);
    stream.sendData(reply, false);
    const t = ['grpc-status', '0'];
    this.#pushRoutingHeaders(t, routing);
    stream.sendTrailers(t);
  }
}
